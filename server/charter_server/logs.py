"""structlog setup: JSON when not on a terminal, readable on a terminal; one event name per line."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog

# Keys whose values never reach a log line, whatever a caller binds.
_SECRET_KEYS = frozenset({"authorization", "secret", "api_key", "password", "private_key", "token"})


def _drop_secrets(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in _SECRET_KEYS.intersection(event):
        event[key] = "[redacted]"
    return event


# The call being served: (request id, method), set by the transport once per call. A context
# variable read by a processor only when a line is written, which is far cheaper per call than
# binding structlog's own context variables.
_call: ContextVar[tuple[str, str] | None] = ContextVar("charter_log_call", default=None)
_threshold = [logging.INFO]  # the configured level, in a list so configure() can change it


def bind_call(request_id: str, method: str) -> None:
    """Name the current call (its request id and method) in every line logged while it runs."""
    _call.set((request_id, method))


def _add_call(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    call = _call.get()
    if call is not None:
        event.setdefault("request_id", call[0])
        event.setdefault("method", call[1])
    return event


def info_enabled() -> bool:
    """Whether info lines are written at the configured level (to skip building one that is not)."""
    return _threshold[0] <= logging.INFO


def _console_renderer() -> structlog.dev.ConsoleRenderer:
    # structlog's default rich traceback prints every frame's local variables, and a server's
    # frames hold API keys (the caller's credentials), so a traceback on a terminal would show
    # them. Tracebacks here never show locals; JSON lines use format_exc_info, which has none.
    return structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False))


def configure(log_format: str = "auto", level: str = "info") -> None:
    """Configure structlog and the standard library logging it sits on."""
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if as_json else _console_renderer()
    numeric = logging.getLevelName(level.upper())
    _threshold[0] = numeric
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_call,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info if as_json else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line (message and newline together): N server processes share one
        # stderr, and print()'s two writes let their lines interleave.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries' standard-library lines (Alembic's, gRPC's) go out in the same format as ours, so
    # that a JSON log stays one JSON object per line. Like basicConfig, this leaves a root logger
    # that already has handlers (an embedding application's) alone.
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    # A library's exception, as text without locals (as our own lines).
                    structlog.processors.format_exc_info if as_json else structlog.dev.set_exc_info,
                    renderer,
                ],
                foreign_pre_chain=[
                    structlog.stdlib.add_log_level,
                    structlog.stdlib.add_logger_name,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                ],
            )
        )
        root.addHandler(handler)
        root.setLevel(numeric)
