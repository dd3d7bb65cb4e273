"""``atsboost-db seed`` and ``atsboost-db init``: the first admin and the plans, for a first deploy."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from atsboost.cli.base import Invocation, force_option, json_option, pass_invocation, plans_option

if TYPE_CHECKING:
    from atsboost.app.init import InitResult
    from atsboost.app.seed import SeedResult
    from atsboost.config.settings import Settings


@click.command()
@plans_option
@json_option
@pass_invocation
def seed(invocation: Invocation, *, plans_file: Path | None, as_json: bool) -> None:
    """Create the first admin (if no active admin exists) and the missing plans; never modify others."""
    from atsboost.app import seed as seeding
    from atsboost.app.catalogue import load_catalogue
    from atsboost.runtime.database import Database

    plans = load_catalogue(plans_file)
    database = Database(invocation.settings)
    try:
        with database.session_scope() as session:
            result = seeding.run(session, settings=invocation.settings, plans=plans)
    finally:
        database.dispose()
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(result), indent=2))
        return
    click.echo(admin_line(result))
    click.echo(
        f"plans   created: {', '.join(result.plans_created) or 'none'}; "
        f"already present: {', '.join(result.plans_existing) or 'none'}"
    )


@click.command()
@plans_option
@force_option
@pass_invocation
def init(invocation: Invocation, *, plans_file: Path | None, force: bool | None) -> None:
    """Prepare a database for its first deploy: migrate every branch, then seed. Safe to run again."""
    from atsboost.app.catalogue import load_catalogue
    from atsboost.app.init import initialize

    result = initialize(invocation.settings, plans=load_catalogue(plans_file), force=force)
    report_init(result, invocation.settings)


def report_init(result: InitResult, settings: Settings) -> None:
    """Print what ``init`` did: the database, the revision, the first admin, the plans."""
    migration = result.migration
    applied = f"applied {len(migration.applied)} revision(s) now" if migration.applied else "already at head"
    created = " (created now: it did not exist)" if result.created else ""
    click.echo(f"database  {result.database}{created}")
    click.echo(f"revision  {', '.join(result.revision)} ({applied})")
    click.echo(admin_line(result.seed))
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
    if settings.embedded:
        click.echo(
            f"the embedded PostgreSQL keeps running in the background (its data: {settings.embedded_dir}); "
            "`atsboost-db dev-db stop` stops it",
            err=True,
        )


def admin_line(result: SeedResult) -> str:
    """Return the line about the first admin."""
    if result.admin_created:
        return f"admin     {result.admin_email} (created now; must change the password at first login)"
    return f"admin     {result.admin_email} (already present)"
