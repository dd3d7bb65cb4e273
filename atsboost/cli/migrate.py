"""``atsboost-db migrate``: apply, revert, inspect and create revisions; ``migrate init`` for an app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from atsboost.cli.base import Invocation, force_option, json_option, pass_invocation

if TYPE_CHECKING:  # importing atsboost.migrations loads Alembic, which --help must not wait for
    from atsboost.migrations.results import MigrationResult

EXIT_PENDING = 3  # `migrate status`: revisions are pending (documented in the README)
EXIT_EDITED = 5  # `migrate status`: an applied revision was edited since (documented in the README)


@click.group(invoke_without_command=True)
@click.option(
    "--dry-run", is_flag=True, default=None, help="Print the pending revisions and their SQL; apply nothing."
)
@force_option
@click.option(
    "--trace", is_flag=True, help="With --dry-run: also trace the locks (see `migrate lint --trace`)."
)
@click.pass_context
def migrate(ctx: click.Context, *, dry_run: bool | None, force: bool | None, trace: bool) -> None:
    """Apply pending revisions of every branch (one migrator at a time, each in its own transaction).

    Also read from the environment: MIGRATION_DRYRUN, MIGRATION_FORCE, MIGRATION_REQUIRE_FORCE,
    MIGRATION_LOCK_TIMEOUT, MIGRATION_STATEMENT_TIMEOUT, MIGRATION_LOCK_WAIT.
    """
    if ctx.invoked_subcommand is not None:
        return
    from atsboost import migrations

    if trace and not dry_run:
        raise click.UsageError("--trace goes with --dry-run: a real migration takes the locks for real")
    invocation = ctx.ensure_object(Invocation)
    result = migrations.upgrade(invocation.settings, dry_run=dry_run, force=force)
    if not result.dry_run:
        click.echo(summary(result))
    elif trace:
        _print_trace(invocation, [r.id for r in result.pending], None)


# ignore_unknown_options: so that "-1" is the REVISION argument, not an unknown option.
@migrate.command("downgrade", context_settings={"ignore_unknown_options": True})
@click.argument("revision")
@click.option("--dry-run", is_flag=True, default=None, help="Print the SQL of the downgrade; apply nothing.")
@click.option("--force", is_flag=True, default=None, help="Required in production (MIGRATION_FORCE is not).")
@click.option(
    "--allow-data-loss", is_flag=True, help="In production: allow dropping tables that hold rows, or base."
)
@pass_invocation
def migrate_downgrade(
    invocation: Invocation, revision: str, *, dry_run: bool | None, force: bool | None, allow_data_loss: bool
) -> None:
    """Revert revisions down to REVISION (e.g. -1, or a revision id, or base)."""
    from atsboost import migrations

    result = migrations.downgrade(
        invocation.settings,
        revision=revision,
        dry_run=dry_run,
        force=force,
        allow_data_loss=allow_data_loss,
    )
    if not result.dry_run:
        click.echo(summary(result))


@migrate.command("create")
@click.argument("name")
@click.option(
    "--autogenerate", is_flag=True, help="Fill the revision from the models' differences with the database."
)
@pass_invocation
def migrate_create(invocation: Invocation, name: str, *, autogenerate: bool) -> None:
    """Write a new revision file named with a UTC timestamp and NAME (letters, digits, _ and -)."""
    from atsboost import migrations

    path = migrations.create(name, autogenerate=autogenerate, settings=invocation.settings)
    click.echo(f"created {path}")


@migrate.command("merge")
@click.option(
    "-m", "--message", default="merge heads", show_default=True, help="The merge revision's message."
)
@pass_invocation
def migrate_merge(invocation: Invocation, *, message: str) -> None:
    """Join your revisions' heads (written in parallel on two branches) with a merge revision."""
    from atsboost import migrations

    click.echo(f"created {migrations.merge(invocation.settings, message=message)}")


@migrate.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--no-app-schema",
    is_flag=True,
    help="Leave out the ATSBoost application's tables (users, subscription_plans, subscriptions).",
)
def migrate_init(directory: Path, *, no_app_schema: bool) -> None:
    """Create an Alembic project for your application in DIRECTORY (default: here).

    It writes alembic.ini and migrations/ (env.py with atsboost's gates, script.py.mako,
    versions/). The ATSBoost application's tables come along as the dependency branch
    "atsboost" unless --no-app-schema: then the project holds your tables only.
    """
    from atsboost.migrations import init_project

    for path in init_project(directory, components=() if no_app_schema else None):
        click.echo(f"created {path}")
    first = (
        "`atsboost-db migrate` applies nothing yet"
        if no_app_schema
        else "`atsboost-db init` creates atsboost's tables and seeds them"
    )
    click.echo(
        f"next, from that folder: {first}; set target_metadata in migrations/env.py to your models' "
        "MetaData, then `atsboost-db migrate create NAME --autogenerate` writes your first revision"
    )


@migrate.command("check")
@pass_invocation
def migrate_check(invocation: Invocation) -> None:
    """Compare the models with the migrations (a CI step): exit 0 when they match, 1 listing the drift."""
    from atsboost import migrations

    differences = migrations.check(invocation.settings)
    if not differences:
        click.echo("the models match the migrations")
        return
    click.echo(f"the models differ from the migrations in {len(differences)} place(s); write a revision:")
    for difference in differences:
        click.echo(f"  {difference}")
    raise SystemExit(1)


@migrate.command("lint")
@click.option(
    "--range", "span", help="Lint the revisions after A up to B, e.g. base:heads (default: pending)."
)
@click.option(
    "--trace",
    is_flag=True,
    help="Also run the pending statements in a rolled-back transaction; show the locks.",
)
@click.option("--trace-url", help="Trace on this database (a staging copy) instead of DATABASE_URL.")
@json_option
@pass_invocation
def migrate_lint(
    invocation: Invocation, *, span: str | None, trace: bool, trace_url: str | None, as_json: bool
) -> None:
    """Check revisions for statements that lock live tables, rewrite them or lose data.

    Exit 0 clean, 1 warnings only, 2 errors. A revision waives a rule with a comment:
    # atsboost: allow AB001 -- the reason
    """
    from atsboost import migrations
    from atsboost.migrations.lint import EXIT_CODES, lint

    settings = invocation.settings
    report = lint(settings, span=span) if span else migrations.lint_pending(settings)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for finding in report.findings:
            waived = f" (waived: {finding.waived})" if finding.waived else ""
            where = " ".join(filter(None, (finding.revision, finding.rule, finding.severity, finding.table)))
            detail = f" ({finding.detail})" if finding.detail else ""
            click.echo(f"{where}{detail}: {finding.problem}{waived}")
            click.echo(f"    lock: {finding.lock}; safe: {finding.recipe}")
            if finding.unchecked:
                click.echo(f"    not checked: {', '.join(finding.unchecked)}")
        if report.consulted:
            click.echo(f"read from the database's catalog: {'; '.join(report.consulted)}")
        click.echo(f"{len(report.revisions)} revision(s) linted: {report.verdict}")
    if trace or trace_url:
        _print_trace(invocation, report.revisions if span is None else None, trace_url)
    raise SystemExit(EXIT_CODES[report.verdict])


def _print_trace(invocation: Invocation, pending: list[str] | None, url: str | None) -> None:
    from atsboost import migrations
    from atsboost.migrations.lint.trace import trace

    settings = invocation.settings if url is None else invocation.settings.with_database(url, "--trace-url")
    if pending is None or url is not None:
        pending = [r.id for r in migrations.status(settings).pending]
    statement = None
    for line in trace(settings, pending):
        if line.statement != statement:
            statement = line.statement
            click.echo(f"{line.revision}: {statement}")
        click.echo(f"    {line}")
    click.echo("traced in a transaction that was rolled back: nothing was changed")


@migrate.command("status")
@json_option
@pass_invocation
def migrate_status(invocation: Invocation, *, as_json: bool) -> None:
    """Show the current revision, the heads and what is pending; exit 3 when revisions are pending."""
    from atsboost import migrations

    state = migrations.status(invocation.settings)
    if as_json:
        data = {
            "current": list(state.current),
            "heads": list(state.heads),
            "pending": [{"id": r.id, "message": r.message} for r in state.pending],
            "up_to_date": state.up_to_date,
            "edited": list(state.edited),
        }
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(f"current  {', '.join(state.current) or 'none (empty database)'}")
        click.echo(f"head     {', '.join(state.heads)}")
        click.echo(f"pending  {len(state.pending)}" + "".join(f"\n  {r}" for r in state.pending))
        click.echo(f"edited   {len(state.edited)}" + "".join(f"\n  {e}" for e in state.edited))
    if state.edited:
        raise SystemExit(EXIT_EDITED)
    if not state.up_to_date:
        raise SystemExit(EXIT_PENDING)


@migrate.command("validate")
@pass_invocation
def migrate_validate(invocation: Invocation) -> None:
    """Check that no applied revision was edited or lost (as Flyway's validate): exit 0, or 1 naming them."""
    from atsboost import migrations

    problems = migrations.validate(invocation.settings)
    for problem in problems:
        click.echo(problem)
    if problems:
        click.echo("review the edits, then record them with `atsboost-db migrate repair`")
        raise SystemExit(1)
    click.echo("every applied revision matches its file")


@migrate.command("repair")
@pass_invocation
def migrate_repair(invocation: Invocation) -> None:
    """Record the revision files as they are now, after a reviewed edit (as Flyway's repair)."""
    from atsboost import migrations

    repaired = migrations.repair(invocation.settings)
    for line in repaired:
        click.echo(f"recorded: {line}")
    click.echo(f"{len(repaired)} revision(s) brought into step" if repaired else "nothing to repair")


def summary(result: MigrationResult) -> str:
    """Return one line on what a migration did."""
    now = ", ".join(result.after) or "base"
    if not result.applied:
        return f"nothing to migrate: the database is at {now}"
    verb = "applied" if all(r.upgrade for r in result.applied) else "reverted"
    return f"{verb} {len(result.applied)} revision(s) in {result.seconds:.2f} s; now at {now}"
