"""Command-line front end: ``i2r COMMAND ...``.

Thin by design: each command parses its arguments, calls one library function and prints or
writes what it returns. Every command is registered by a ``_add_<command>`` function below, in
the order ``i2r --help`` lists them. Mistakes a user can make raise :class:`i2r.errors.UserError`
in the library and become one ``error: ...`` line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from i2r import __version__
from i2r.errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake prints one ``error:`` line (plus a hint), not a usage dump."""

    def error(self, message):  # noqa: D401 - argparse API
        sys.stderr.write(f"error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _add_command(sub, name: str, help_text: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_text, description=description, formatter_class=_formatter)


# --- commands -----------------------------------------------------------------------------------
# Each _add_<command>(sub) builds its parser and sets `func`, a callable(args) -> exit status.


COMMANDS = []


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="i2r",
        description="Image2Reverb, rebuilt: turn a photo of a space into its room impulse response, "
        "apply it to dry audio, and measure everything about it.",
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"i2r {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted; finished results were kept\n")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
