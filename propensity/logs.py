"""Logging is configured here once, by the entry point."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(message)s",
        datefmt="[%X]",
        # stderr: stdout belongs to the command's output (``--json`` must stay parseable).
        handlers=[
            RichHandler(console=Console(stderr=True), rich_tracebacks=False, show_path=False)
        ],
        force=True,
    )
