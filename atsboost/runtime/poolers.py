"""A pooler that refuses the ``options`` startup parameter: connect again without atsboost's own.

atsboost asks the server, in ``options``, to watch each session's link itself
(``DATABASE_STALL_TIMEOUT``: keepalives, user timeout, connection checks), so that a
client lost behind a dead link does not leave its session open for hours. PgBouncer
in session mode (unless ``ignore_startup_parameters`` lists ``options``) refuses the
parameter and the connection with it. Those settings are a safeguard, not the
user's request: a refused connection is made again without them, once noted
(WARNING), and every later one of the same engine goes without. An ``options`` the
user asked for (``DATABASE_STATEMENT_TIMEOUT``, the URL's) is not dropped: that
refusal reaches the caller, and ``diagnosis`` says what to change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from atsboost.config.parameters import stall_options
from atsboost.config.settings import Settings

logger = logging.getLogger("atsboost.runtime.poolers")

REFUSED = "unsupported startup parameter: options"
T = TypeVar("T")


class OptionsFallback:
    """One engine's (or command's) memory of a refused ``options``, and the connection made again."""

    def __init__(self, settings: Settings) -> None:
        # Only the stall bounds alone may be dropped: a statement timeout or the URL's options may not.
        self._droppable = stall_options(settings.runtime.stall_timeout)
        self._refused = False
        self._lock = threading.Lock()

    def connect(self, connect: Callable[[dict[str, Any]], T], params: dict[str, Any]) -> T:
        """Call ``connect(params)``; without atsboost's ``options`` once a pooler has refused them."""
        if self._refused and self._own(params):
            return connect(_without_options(params))
        try:
            return connect(params)
        except Exception as error:
            if REFUSED not in str(error) or not self._own(params):
                raise
            self._note(params)
            return connect(_without_options(params))

    def install(self, engine: Any) -> None:
        """Connect this way for ``engine`` (an Engine, or an AsyncEngine's ``sync_engine``)."""
        from sqlalchemy import event  # here: a psycopg-only command (health) never loads SQLAlchemy

        def do_connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
            return self.connect(lambda params: dialect.connect(*cargs, **params), cparams)

        event.listen(engine, "do_connect", do_connect)

    def _own(self, params: dict[str, Any]) -> bool:
        return params.get("options") == self._droppable

    def _note(self, params: dict[str, Any]) -> None:
        with self._lock:
            first, self._refused = not self._refused, True
        if first:
            logger.warning(
                "%s refuses the options startup parameter (a pooler, such as PgBouncer in session mode): "
                "connecting without it, so the server will not end by itself the sessions of clients lost "
                "behind a dead link; add options to the pooler's ignore_startup_parameters to keep them",
                _where(params),
                extra={"event": "options_refused"},
            )


def _without_options(params: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in params.items() if name != "options"}


def _where(params: dict[str, Any]) -> str:
    host, port = params.get("host"), params.get("port")
    return f"{host}:{port}" if host and port else str(host or "the server")
