"""libpq connection parameters from settings, for the engine's pool and for one direct connection.

One translation serves both: the engine passes these as ``connect_args``, and a
short command (``migrate status``, ``health``) opens a single psycopg connection
with them, so it starts without loading SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atsboost.config.settings import Settings

if TYPE_CHECKING:
    import psycopg

    from atsboost.config.urls import ConnectionURL


def connect_args(
    settings: Settings, *, asynchronous: bool = False, url: ConnectionURL | None = None
) -> dict[str, Any]:
    """Return the libpq connection parameters for ``url`` (default DATABASE_URL), for an AsyncConnection too.

    The values are ``Settings.connection_parameters``: atsboost's, and a URL's own over them.
    """
    args: dict[str, Any] = {p.name: p.value for p in settings.connection_parameters(url).values()}
    if settings.ssl.mode is not None:
        args["sslmode"] = settings.ssl.mode
    if settings.ssl.root_cert is not None and settings.ssl.mode != "disable":
        args["sslrootcert"] = settings.ssl.root_cert
    args.update(settings.connect_secrets)
    if settings.pool.mode == "transaction":
        # A transaction pooler hands each transaction to any server connection: a statement
        # prepared on one is missing on the next (PgBouncer before 1.21 has no support at all).
        args["prepare_threshold"] = None
        if settings.statement_timeout_ms is not None:
            from atsboost.runtime import transaction_start

            # Poolers reject the 'options' startup parameter: SET LOCAL, in each transaction's BEGIN.
            cursor = (
                transaction_start.async_statement_timeout_cursor
                if asynchronous
                else transaction_start.statement_timeout_cursor
            )
            args["cursor_factory"] = cursor(settings.statement_timeout_ms)
    return args


def side_args(
    settings: Settings,
    purpose: str,
    *,
    pooled: bool,
    connect_timeout: int | None = None,
    asynchronous: bool = False,
    url: ConnectionURL | None = None,
) -> dict[str, Any]:
    """Return the parameters of a connection to ``url`` beside the application's (migrations, health).

    It has the application's SSL and timeouts and its own ``application_name``
    (``atsboost:migrate``), so ``pg_stat_activity`` tells them apart. ``pooled``:
    it goes to DATABASE_URL, whose pooler's needs it keeps.
    """
    args = connect_args(settings, asynchronous=asynchronous, url=url)
    args["application_name"] = f"{args['application_name']}:{purpose}"[:63]
    if connect_timeout is not None:  # the caller's own bound; a URL's shorter one stays
        args["connect_timeout"] = str(min(connect_timeout, int(args["connect_timeout"])))
    if not pooled:
        args.pop("prepare_threshold", None)
        args.pop("cursor_factory", None)
    return args


def direct_connection(
    settings: Settings, purpose: str, url: ConnectionURL | None = None
) -> psycopg.Connection[Any] | None:
    """Connect with psycopg alone (autocommit) to ``url``, default DATABASE_URL.

    None when a URL has options only SQLAlchemy's dialect joins (``?host=a&host=b``)
    or none is set (the embedded server): the caller builds an engine instead.
    A connection failure raises ``psycopg.Error``.
    """
    target = url or settings.url
    params = target.libpq() if target is not None else None
    if params is None:
        return None
    import psycopg

    from atsboost.runtime.poolers import OptionsFallback

    args = side_args(settings, purpose, pooled=target == settings.url, url=target)
    connect = OptionsFallback(settings).connect
    return connect(lambda given: psycopg.connect(**given, autocommit=True), {**params, **args})
