"""One logging set-up for every command and stand-in: `setup(level)`.

Today the format is one text line per record. Issue 14 adds a JSON format: a `format` argument to `setup` (and
an option or NPO_* setting in the commands) choosing the formatter in `_formatter`, nothing else.
"""

from __future__ import annotations

import logging

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
LEVELS = ("critical", "error", "warning", "info", "debug")


def _formatter() -> logging.Formatter:
    return logging.Formatter(TEXT_FORMAT)


def setup(level: str = "info") -> None:
    """Log records at `level` and above (a name from LEVELS, any case) to standard error. As `logging.basicConfig`,
    it leaves a root logger that already has handlers alone (tests, embedding applications)."""
    if level.lower() not in LEVELS:
        raise ValueError(f"unknown log level {level!r} (one of {', '.join(LEVELS)})")
    handler = logging.StreamHandler()
    handler.setFormatter(_formatter())
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))  # its plugin lines
