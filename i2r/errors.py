"""The one exception type for mistakes a user can make (bad file, bad CSV, wrong checkpoint).

The CLI turns it into a single ``error: ...`` line on stderr and exit status 2; library callers
can catch it like any ``ValueError``.
"""


class UserError(ValueError):
    """A problem with the user's input, reported without a traceback."""
