"""The CLI layer: every click command, thin over the library. `main` is the console script."""

from trafficlight.cli.main import cli, main

__all__ = ["cli", "main"]
