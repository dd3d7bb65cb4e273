"""The ``atsboost-db`` group, and the commands about the setup itself: ``config`` and ``dev-db``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from atsboost.cli.base import Group, Invocation, configure_logging, json_option, pass_invocation, plans_option

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.engine import Engine

    from atsboost.config.settings import Settings


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Log everything and show tracebacks.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: every line on stderr one JSON object with its fields (docs/observability.md).",
)
@click.version_option(package_name="atsboost")
@click.pass_context
def cli(ctx: click.Context, *, debug: bool, log_format: str) -> None:
    """Run, inspect and maintain the PostgreSQL database of an atsboost application.

    Settings come from the environment (ATSBOOST_ENV or NODE_ENV, DATABASE_URL,
    DATABASE_SSL, DATABASE_POOL_SIZE, ...): run `atsboost-db config` to see them.
    """
    ctx.meta["atsboost.debug"] = debug
    ctx.meta["atsboost.json_logs"] = log_format == "json"
    ctx.obj = Invocation()
    configure_logging(debug=debug, json_lines=log_format == "json")


@cli.command()
@json_option
@click.option("--connect", is_flag=True, help="Also connect and describe the server.")
@pass_invocation
def config(invocation: Invocation, *, as_json: bool, connect: bool) -> None:
    """Show the effective settings: environment, database, SSL, pool and timeouts."""
    from atsboost.config import render
    from atsboost.health.connect import hosts
    from atsboost.runtime.engine import create_engine, engine_url, server_info

    settings = invocation.settings
    described = render.describe(settings)
    if connect:
        engine = create_engine(settings)
        try:
            described["database_url"] = engine_url(engine).render_as_string(hide_password=True)
            described["server"] = vars(server_info(engine))
            described["role"] = _role(engine, settings)
        finally:
            engine.dispose()
        if settings.replicas.urls:
            described["replicas"]["nodes"] = _replica_nodes(settings)
        described["hosts"] = hosts(settings)
    click.echo(json.dumps(described, indent=2) if as_json else render.render(described))


def _role(engine: Engine, settings: Settings) -> dict[str, Any]:
    """Describe the role the application connects as, with the health report's verdicts on it."""
    import dataclasses

    from atsboost.config.environment import Environment
    from atsboost.health.checks import Thresholds, role_checks
    from atsboost.runtime import privileges

    with engine.connect() as conn:
        driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
        role: Any = privileges.connected_role(privileges.rows_of(driver))
    limits = Thresholds.for_environment(production=settings.environment is Environment.PRODUCTION)
    return {**role, "checks": [dataclasses.asdict(check) for check in role_checks(role, limits)]}


def _replica_nodes(settings: Settings) -> list[dict[str, object]]:
    """Measure each replica once: its role and replay lag, or why it cannot be reached."""
    from atsboost.runtime.database import close_replicas
    from atsboost.runtime.engine import create_engine
    from atsboost.runtime.replicas import ReplicaSet

    replicas = ReplicaSet.build(settings, create_engine, measure_inline=True)
    try:
        for replica in replicas.replicas:
            replica.measure()
        return [replica.describe() for replica in replicas.replicas]
    finally:
        close_replicas(replicas)


@cli.group("dev-db")
def dev_db() -> None:
    """Manage the embedded development PostgreSQL (used when DATABASE_URL is unset)."""


@dev_db.command("url")
@pass_invocation
def dev_db_url(invocation: Invocation) -> None:
    """Start the embedded server if needed and print its URL (for psql or DATABASE_URL).

    Its data folder (the project's .atsboost/, or ATSBOOST_EMBEDDED_DIR) is named on stderr.
    """
    from atsboost.runtime import embedded

    directory = invocation.settings.embedded_dir
    url = embedded.ensure_running(directory)
    click.echo(url.set(drivername="postgresql").render_as_string(hide_password=True))
    click.echo(f"the embedded PostgreSQL keeps its data in {directory}", err=True)


@dev_db.command("reset")
@plans_option
@pass_invocation
def dev_db_reset(invocation: Invocation, *, plans_file: Path | None) -> None:
    """Drop the embedded development database, create it again and `init` it (development only)."""
    from atsboost.app.catalogue import load_catalogue
    from atsboost.app.init import initialize
    from atsboost.cli.data import report_init
    from atsboost.config.environment import Environment
    from atsboost.errors import ConfigurationError
    from atsboost.runtime import embedded

    settings = invocation.settings
    if settings.environment is not Environment.DEVELOPMENT or not settings.embedded:
        raise ConfigurationError(
            "dev-db reset drops the embedded development database only, and this is "
            f"{settings.masked_url} in {settings.environment.value}; unset DATABASE_URL in development "
            "to reset the embedded one (for another database, drop it yourself, then `atsboost-db init`)"
        )
    plans = load_catalogue(plans_file)  # a bad catalogue fails before anything is dropped
    embedded.recreate_database(settings.embedded_dir)
    click.echo(f"dropped and created the embedded database in {settings.embedded_dir}")
    report_init(initialize(settings, plans=plans), settings)


@dev_db.command("stop")
@pass_invocation
def dev_db_stop(invocation: Invocation) -> None:
    """Stop the embedded server (its data stays; the next command starts it again)."""
    from atsboost.runtime import embedded

    directory = invocation.settings.embedded_dir
    if embedded.stop(directory):
        click.echo(f"stopped the embedded PostgreSQL in {directory}")
    else:
        click.echo(f"the embedded PostgreSQL in {directory} is not running")
