"""``python -m evalsuite`` (and ``accelerate launch -m evalsuite``) runs the CLI."""

from evalsuite.cli import main

raise SystemExit(main())
