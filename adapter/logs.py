"""One logging set-up for every command and stand-in: `setup(level, format)`.

Two formats: `text`, one line per record (time, level, logger, message), and `json`, one JSON object per line
for a log pipeline:

    {"time": "2026-03-01T09:30:00.123Z", "level": "info", "logger": "adapter.producer",
     "event": "GetDiagnosis OK 6f1c…: 2 records to consumer …", "log_id": "6f1c…", "contract": "GetDiagnosis:2",
     "consumer": "SE165565594230-1000", "correlation_id": "0b7e9a4e-…"}

`log_id`, `contract` and `consumer` come from `bind` (the producer binds them per call; each request runs in its
own task, so they never leak into another request), `correlation_id` from adapter/correlation.py; a field that is
not known is null. The format is chosen by the commands' `--log-format`, else NPO_LOG_FORMAT, else text.
Personal data never goes into a message above debug level, in either format.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

from adapter import correlation

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
LEVELS = ("critical", "error", "warning", "info", "debug")
FORMATS = ("text", "json")
FORMAT_ENV = "NPO_LOG_FORMAT"
FIELDS = ("log_id", "contract", "consumer")  # bound per call; correlation_id comes from adapter.correlation

_bound: ContextVar[Mapping[str, str]] = ContextVar("npo_log_fields", default=MappingProxyType({}))


def bind(**fields: str | None) -> None:
    """Add fields (`log_id`, `contract`, `consumer`) to every record logged from here on in this task or thread."""
    merged = dict(_bound.get())
    for name, value in fields.items():
        if name not in FIELDS:
            unknown = sorted(set(fields) - set(FIELDS))
            raise ValueError(f"unknown log field(s): {', '.join(unknown)}")
        if value is not None:
            merged[name] = value
    _bound.set(MappingProxyType(merged))


@contextlib.contextmanager
def fields_scope() -> Iterator[None]:
    """Fields bound inside the block are forgotten after it (for code that is not a task of its own)."""
    token = _bound.set(MappingProxyType({}))
    try:
        yield
    finally:
        _bound.reset(token)


def bound() -> Mapping[str, str]:
    return _bound.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ms), level, logger, event, log_id, contract, consumer,
    correlation_id; `exception` with the traceback when the record carries one (logged at debug only here)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _bound.get()
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for name in FIELDS:
            out[name] = getattr(record, name, None) or fields.get(name)
        out["correlation_id"] = getattr(record, "correlation_id", None) or correlation.current()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """`logging.Formatter(TEXT_FORMAT)`, writing the same time; the date and time to the second are formatted once
    per second (`time.strftime` was a fifth of the producer's line per answer)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second: tuple[int, str] = (-1, "")  # one tuple, so that threads never see a half-updated pair

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, time.strftime(self.default_time_format, self.converter(record.created)))
        return self.default_msec_format % (cached[1], record.msecs)


def _formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def log_format(fmt: str | None = None) -> str:
    """The format asked for: `fmt`, else NPO_LOG_FORMAT, else text (ValueError for another name)."""
    chosen = (fmt or os.environ.get(FORMAT_ENV) or "text").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(f"unknown log format {chosen!r} (one of {', '.join(FORMATS)})")
    return chosen


def setup(level: str = "info", fmt: str | None = None) -> None:
    """Log records at `level` and above (a name from LEVELS, any case) to standard error, as text or JSON
    (`fmt`, see `log_format`). As `logging.basicConfig`, it leaves a root logger that already has handlers alone
    (tests, embedding applications)."""
    if level.lower() not in LEVELS:
        raise ValueError(f"unknown log level {level!r} (one of {', '.join(LEVELS)})")
    # Neither format shows where a call was made, nor thread or process names: not collecting them is what the
    # logging HOWTO's "Optimization" section says; the producer's one line per answer cost a sixth of an answer.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    handler.setFormatter(_formatter(log_format(fmt)))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))  # its plugin lines


_CORRELATION_HEADER = correlation.HEADER.encode("latin-1")


class RequestContext:
    """ASGI middleware: each HTTP request gets its correlation id (the caller's `x-skltp-correlation-id` when it is
    usable, else a new one; echoed in the answer's header) and starts with no bound log fields."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = None
        for name, value in scope.get("headers", ()):
            if name == _CORRELATION_HEADER:
                sent = value.decode("latin-1")
                break
        value = correlation.accepted(sent)
        token = _bound.set(MappingProxyType({}))
        with correlation.scope(value) as used:
            if sent is not None and value is None:
                logging.getLogger("adapter.gateway").info(
                    "%s not used (it could hold personal data): %s given instead", correlation.HEADER, used)
            echoed = (_CORRELATION_HEADER, used.encode("latin-1"))

            async def send_with_id(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), echoed]
                await send(message)

            try:
                await self.app(scope, receive, send_with_id)
            finally:
                _bound.reset(token)
