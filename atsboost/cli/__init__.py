"""``atsboost-db``: a thin click layer over the library.

Library errors become one readable line and exit code 1 here, and only here;
``--debug`` shows the traceback. Heavy modules load inside the commands so that
``atsboost-db --help`` starts as fast as ``alembic --help``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import traceback
from pathlib import Path
from typing import Any

import click

from atsboost.errors import AtsboostError

logger = logging.getLogger(__name__)


class _Group(click.Group):
    """Turn AtsboostError into ``Error: ...`` and exit code 1, with a traceback under --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AtsboostError as exc:
            if ctx.meta.get("atsboost.debug"):
                traceback.print_exc()
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Log everything and show tracebacks.")
@click.version_option(package_name="atsboost")
@click.pass_context
def cli(ctx: click.Context, *, debug: bool) -> None:
    """Run, inspect and maintain the PostgreSQL database of an atsboost application.

    Settings come from the environment (ATSBOOST_ENV or NODE_ENV, DATABASE_URL,
    DATABASE_SSL, DATABASE_POOL_SIZE, ...): run `atsboost-db config` to see them.
    """
    ctx.meta["atsboost.debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not debug:
        # Our own progress lines say what runs; the libraries' INFO chatter is for --debug.
        # (SQLAlchemy logs pool lifecycle under the pool class's module: atsboost.runtime.pool.)
        for name in ("pgserver", "alembic", "atsboost.runtime.pool", "atsboost.runtime.shutdown"):
            logging.getLogger(name).setLevel(logging.WARNING)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--connect", is_flag=True, help="Also connect and describe the server.")
def config(*, as_json: bool, connect: bool) -> None:
    """Show the effective settings: environment, database, SSL, pool and timeouts."""
    from atsboost import db
    from atsboost.config import render as settings_render
    from atsboost.config.settings import get_settings
    from atsboost.runtime.engine import server_info

    settings = get_settings()
    described = settings_render.describe(settings)
    if connect:
        engine = db.get_engine()
        described["database_url"] = engine.url.render_as_string(hide_password=True)
        described["server"] = vars(server_info(engine))
    if as_json:
        click.echo(json.dumps(described, indent=2))
    else:
        click.echo(settings_render.render(described))


@cli.group("dev-db")
def dev_db() -> None:
    """Manage the embedded development PostgreSQL (used when DATABASE_URL is unset)."""


@dev_db.command("url")
def dev_db_url() -> None:
    """Start the embedded server if needed and print its URL (for psql or DATABASE_URL)."""
    from atsboost.config.settings import get_settings
    from atsboost.runtime import embedded

    url = embedded.ensure_running(get_settings().embedded_dir)
    click.echo(url.set(drivername="postgresql").render_as_string(hide_password=True))


@dev_db.command("stop")
def dev_db_stop() -> None:
    """Stop the embedded server (its data stays; the next command starts it again)."""
    from atsboost.config.settings import get_settings
    from atsboost.runtime import embedded

    directory = get_settings().embedded_dir
    if embedded.stop(directory):
        click.echo(f"stopped the embedded PostgreSQL in {directory}")
    else:
        click.echo(f"the embedded PostgreSQL in {directory} is not running")


EXIT_PENDING = 3  # `migrate status`: revisions are pending (documented in the README)

_plans_option = click.option(
    "--plans",
    "plans_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Seed from this plan catalogue (TOML) instead of the shipped one.",
)


@cli.group(invoke_without_command=True)
@click.option(
    "--dry-run", is_flag=True, default=None, help="Print the pending revisions and their SQL; apply nothing."
)
@click.option(
    "--force", is_flag=True, default=None, help="Allow migrating in production when a gate requires it."
)
@click.pass_context
def migrate(ctx: click.Context, *, dry_run: bool | None, force: bool | None) -> None:
    """Apply pending revisions (one migrator at a time, each in its own transaction).

    Also read from the environment: MIGRATION_DRYRUN, MIGRATION_FORCE, MIGRATION_REQUIRE_FORCE,
    MIGRATION_LOCK_TIMEOUT, MIGRATION_STATEMENT_TIMEOUT, MIGRATION_LOCK_WAIT.
    """
    if ctx.invoked_subcommand is not None:
        return
    from atsboost import migrations

    result = migrations.upgrade(dry_run=dry_run, force=force)
    if not result.dry_run:
        click.echo(_summary(result))


@migrate.command("downgrade")
@click.argument("revision")
@click.option("--dry-run", is_flag=True, default=None, help="Print the SQL of the downgrade; apply nothing.")
@click.option("--force", is_flag=True, default=None, help="Required in production.")
def migrate_downgrade(revision: str, *, dry_run: bool | None, force: bool | None) -> None:
    """Revert revisions down to REVISION (e.g. -1, or a revision id, or base)."""
    from atsboost import migrations

    result = migrations.downgrade(revision=revision, dry_run=dry_run, force=force)
    if not result.dry_run:
        click.echo(_summary(result))


@migrate.command("create")
@click.argument("name")
@click.option(
    "--autogenerate", is_flag=True, help="Fill the revision from the models' differences with the database."
)
def migrate_create(name: str, *, autogenerate: bool) -> None:
    """Write a new revision file named with a UTC timestamp and NAME (letters, digits, _ and -)."""
    from atsboost import migrations

    path = migrations.create(name, autogenerate=autogenerate)
    click.echo(f"created {path}")


@migrate.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def migrate_status(*, as_json: bool) -> None:
    """Show the current revision, the head and what is pending; exit 3 when revisions are pending."""
    from atsboost import migrations

    state = migrations.status()
    if as_json:
        data = {
            "current": list(state.current),
            "heads": list(state.heads),
            "pending": [{"id": r.id, "message": r.message} for r in state.pending],
            "up_to_date": state.up_to_date,
        }
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(f"current  {', '.join(state.current) or 'none (empty database)'}")
        click.echo(f"head     {', '.join(state.heads)}")
        click.echo(f"pending  {len(state.pending)}" + "".join(f"\n  {r}" for r in state.pending))
    if not state.up_to_date:
        raise SystemExit(EXIT_PENDING)


@cli.command()
@_plans_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def seed(*, plans_file: Path | None, as_json: bool) -> None:
    """Create the first admin (if no active admin exists) and the missing plans; never modify others."""
    from atsboost import db
    from atsboost.app import seed as seeding
    from atsboost.app.catalogue import load_catalogue

    plans = load_catalogue(plans_file)
    with db.session_scope() as session:
        result = seeding.run(session, plans=plans)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(result), indent=2))
        return
    click.echo(_admin_line(result))
    click.echo(
        f"plans   created: {', '.join(result.plans_created) or 'none'}; "
        f"already present: {', '.join(result.plans_existing) or 'none'}"
    )


@cli.command()
@_plans_option
@click.option(
    "--force", is_flag=True, default=None, help="Allow migrating in production when a gate requires it."
)
def init(*, plans_file: Path | None, force: bool | None) -> None:
    """Prepare a database for its first deploy: migrate to head, then seed. Safe to run again."""
    from atsboost.app.catalogue import load_catalogue
    from atsboost.app.init import initialize

    result = initialize(plans=load_catalogue(plans_file), force=force)
    migration = result.migration
    applied = f"applied {len(migration.applied)} revision(s) now" if migration.applied else "already at head"
    click.echo(f"database  {result.database}")
    click.echo(f"revision  {', '.join(result.revision)} ({applied})")
    click.echo(_admin_line(result.seed))
    for plan in result.plans:
        new = "  (created now)" if plan.code in result.seed.plans_created else ""
        state = "" if plan.is_active else ", inactive"
        click.echo(
            f"plan      {plan.code:<12} {plan.name:<16} {plan.price_cents / 100:>8.2f} {plan.currency}"
            f"/{plan.billing_interval}{state}{new}"
        )
    click.echo(
        "initialised the database"
        if result.changed
        else "nothing changed: the database was already initialised"
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (schema: docs/health.md).")
@click.option("--check", is_flag=True, help="Print one line and exit 0 OK, 1 WARNING, 2 CRITICAL.")
@click.option(
    "--long-query-seconds", type=float, default=60.0, show_default=True, help="List queries running longer."
)
@click.option("--critical-query-seconds", type=float, default=300.0, show_default=True)
@click.option(
    "--warning-connections", type=float, default=80.0, show_default=True, help="Percent of usable slots."
)
@click.option("--critical-connections", type=float, default=95.0, show_default=True)
@click.option("--warning-idle-transaction", type=float, default=60.0, show_default=True, help="Seconds.")
@click.option("--critical-idle-transaction", type=float, default=300.0, show_default=True)
@click.option("--warning-cache-hit", type=float, default=99.0, show_default=True, help="Percent.")
@click.option("--critical-cache-hit", type=float, default=95.0, show_default=True)
def health(*, as_json: bool, check: bool, long_query_seconds: float, **limits: float) -> None:
    """Report on the database: connection, size, tables, connections, long queries, blocking, indexes."""
    from atsboost import db, migrations
    from atsboost.health import collect as reporting
    from atsboost.health.checks import EXIT_CODES, Thresholds, evaluate, overall, summary
    from atsboost.health.render import render

    thresholds = Thresholds(
        connections_warning=limits["warning_connections"] / 100,
        connections_critical=limits["critical_connections"] / 100,
        long_query_warning=long_query_seconds,
        long_query_critical=limits["critical_query_seconds"],
        idle_in_transaction_warning=limits["warning_idle_transaction"],
        idle_in_transaction_critical=limits["critical_idle_transaction"],
        cache_hit_warning=limits["warning_cache_hit"] / 100,
        cache_hit_critical=limits["critical_cache_hit"] / 100,
    )
    status = _migration_status(migrations)
    report = reporting.report(db.get_engine(), long_query_seconds=long_query_seconds, migration_status=status)
    checks = evaluate(report, thresholds)
    if as_json:
        data = {
            **report.as_dict(),
            "status": overall(checks),
            "checks": [dataclasses.asdict(c) for c in checks],
        }
        click.echo(json.dumps(data, indent=2, default=str))
    elif check:
        click.echo(summary(checks))
    else:
        click.echo(render(report, checks, long_query_seconds=long_query_seconds))
    if check:
        raise SystemExit(EXIT_CODES[overall(checks)])


def _migration_status(migrations: Any) -> Any:
    """Return the migration state for the report, or None when it cannot be read."""
    try:
        return migrations.status()
    except AtsboostError:
        return None


def _admin_line(result: Any) -> str:
    if result.admin_created:
        return f"admin     {result.admin_email} (created now; must change the password at first login)"
    return f"admin     {result.admin_email} (already present)"


def _summary(result: Any) -> str:
    if not result.applied:
        return f"nothing to migrate: the database is at {', '.join(result.before) or 'base'}"
    verb = "applied" if all(r.upgrade for r in result.applied) else "reverted"
    return (
        f"{verb} {len(result.applied)} revision(s) in {result.seconds:.2f} s; now at {result.applied[-1].id}"
    )


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="atsboost-db")
