"""``python -m i2r`` (and ``torchrun -m i2r``) runs the command-line front end."""

from i2r.cli import main

raise SystemExit(main())
