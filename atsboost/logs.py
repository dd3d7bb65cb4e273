"""Log lines for machines: one JSON object per line, with each event's own fields, secrets masked.

``atsboost-db --log-format json`` uses it; an application adds it to its own handler:

    handler.setFormatter(atsboost.logs.JsonLogFormatter())

Every line has ``timestamp``, ``level``, ``logger`` and ``message``; atsboost's own
events add ``event`` and their figures (``sqlstate``, ``attempt``, ``revision``,
``duration_seconds``, ...), listed in docs/observability.md. atsboost never logs a
password; this formatter still masks any that a message from elsewhere carries,
in a URL (``postgresql://user:***@host``) or a ``password=`` keyword.
"""

from __future__ import annotations

import re
from typing import Any

from pythonjsonlogger.json import JsonFormatter

_IN_URL = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)([^@\s]+)@", re.IGNORECASE)
_KEYWORD = re.compile(r"(\bpassword\s*=\s*)('[^']*'|[^\s&;]+)", re.IGNORECASE)


def mask(text: str) -> str:
    """Return ``text`` with the passwords of URLs and ``password=`` keywords replaced by ``***``."""
    return _KEYWORD.sub(r"\1***", _IN_URL.sub(r"\1***@", text))


class JsonLogFormatter(JsonFormatter):
    """Format a record as one JSON object: timestamp, level, logger, message and the event's fields."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """Mask secrets in every text field, the message and any traceback included."""
        return {key: mask(value) if isinstance(value, str) else value for key, value in log_data.items()}
