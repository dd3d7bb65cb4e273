"""Flask: an extension in Flask-SQLAlchemy's style, with a session per application context.

    from flask import Flask
    from atsboost.integrations.flask import Atsboost

    database = Atsboost()


    def create_app():
        app = Flask(__name__)
        database.init_app(app)  # waits for the database, migrates, starts the monitor
        app.register_blueprint(database.health_blueprint())
        return app


    @app.post("/plans/<code>")
    def create_plan(code):
        database.session.add(SubscriptionPlan(code=code, ...))
        database.commit()

The state lives on the extension. Its database is ``atsboost.db``'s process-wide one
(what ``atsboost.integrations.gunicorn``'s hooks act on), or one of its own when the
app's config gives settings (``ATSBOOST_SETTINGS``, an ``atsboost.Settings``). The
session is removed when the application context ends: what was not committed is
rolled back, and the connection goes back to the pool. Install the extra:
``pip install 'atsboost[flask]'``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar, Unpack

from flask import Blueprint, Flask, Response, g, jsonify
from sqlalchemy.orm import Session

from atsboost import db
from atsboost.config.settings import Settings
from atsboost.runtime.retry import TransactionOptions

__all__ = ["Atsboost"]

T = TypeVar("T")
_SESSION = "_atsboost_session"


class Atsboost:
    """The database of a Flask app: sessions per application context, startup, health routes."""

    def __init__(self, app: Flask | None = None, *, startup: bool = True) -> None:
        self.startup = startup
        self.database: db.Database = db.default
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the extension on ``app``: its settings, the session's teardown, and startup.

        ``ATSBOOST_SETTINGS`` in ``app.config`` gives the database settings of its own;
        ``ATSBOOST_STARTUP`` (default: the constructor's ``startup``) runs ``startup()``
        now, as ``db.startup()`` in the app module would (under gunicorn with
        ``preload_app``, once in the master: migrations run once, before the fork).
        """
        settings: Settings | None = app.config.get("ATSBOOST_SETTINGS")
        if settings is not None:
            self.database = db.Database(settings)
        app.extensions["atsboost"] = self
        app.teardown_appcontext(self._remove_session)
        if app.config.get("ATSBOOST_STARTUP", self.startup):
            self.database.startup()

    @property
    def session(self) -> Session:
        """The Session of the current application context, made on first use."""
        if _SESSION not in g:
            setattr(g, _SESSION, Session(self.database.get_engine(), expire_on_commit=False))
        session: Session = getattr(g, _SESSION)
        return session

    def commit(self) -> None:
        """Commit the current context's session."""
        self.session.commit()

    def rollback(self) -> None:
        """Roll the current context's session back."""
        self.session.rollback()

    def run_transaction(self, fn: Callable[[Session], T], **options: Unpack[TransactionOptions]) -> T:
        """Run ``fn(session)`` in a transaction of its own, retried whole on a transient error."""
        return self.database.run_transaction(fn, **options)

    def health_blueprint(self, name: str = "atsboost_health") -> Blueprint:
        """Return ``/healthz`` (the process serves) and ``/readyz`` (``health_state()``; 503 when down)."""
        blueprint = Blueprint(name, __name__)

        @blueprint.get("/healthz")
        def healthz() -> Response:
            return jsonify(status="alive")

        @blueprint.get("/readyz")
        def readyz() -> tuple[Response, int]:
            state = self.database.health_state()
            return jsonify(state), 503 if state["status"] == "down" else 200

        return blueprint

    def metrics_blueprint(self, name: str = "atsboost_metrics") -> Blueprint:
        """Return ``/metrics``: atsboost's figures for Prometheus, every worker's under gunicorn.

        With ``PROMETHEUS_MULTIPROC_DIR`` set (prometheus_client's multi-process mode) each
        worker writes its figures to files and a scrape adds up every worker's; without
        it, the process's own. Needs ``pip install 'atsboost[prometheus]'``.
        """
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

        from atsboost.metrics import prometheus

        prometheus.register()
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))  # prometheus_client's own switch
        blueprint = Blueprint(name, __name__)

        @blueprint.get("/metrics")
        def scrape() -> Response:
            registry = prometheus.scrape_registry() if multiprocess else REGISTRY
            return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

        return blueprint

    def _remove_session(self, exc: BaseException | None) -> Any:
        """Close the context's session: roll back what was not committed, give the connection back."""
        session: Session | None = g.pop(_SESSION, None)
        if session is not None:
            session.close()
