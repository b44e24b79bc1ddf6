"""The `samepage` command line: the top layer, the only code that sees training and serving both."""

from samepage.cli.main import app

__all__ = ["app"]
