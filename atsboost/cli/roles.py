"""``atsboost-db roles``: the SQL of least privilege (owner, application, read-only), printed or applied."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import TYPE_CHECKING

import click

from atsboost.cli.base import Invocation, json_option, pass_invocation

if TYPE_CHECKING:
    from atsboost.config.roles import RoleNames
    from atsboost.migrations.roles import RolesResult

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _schema(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not _SCHEMA.fullmatch(value) or value.startswith("pg_"):
        raise click.BadParameter(
            f"{value!r} is not a usable schema name; use lowercase letters, digits and _ (at most 63)"
        )
    return value


@click.command()
@click.option("--apply", "run", is_flag=True, help="Run the SQL (idempotent) instead of printing it.")
@click.option(
    "--schema",
    default="public",
    show_default=True,
    callback=_schema,
    help="The schema whose tables they cover.",
)
@json_option
@pass_invocation
def roles(invocation: Invocation, *, run: bool, schema: str, as_json: bool) -> None:
    """Print (or --apply) the roles: an owner that migrates, an application role, a read-only role.

    Names: DATABASE_OWNER_ROLE, DATABASE_APP_ROLE, DATABASE_READONLY_ROLE. --apply runs as
    DATABASE_MIGRATION_URL (else DATABASE_URL): a superuser or admin to create them, then the owner.
    """
    from atsboost.migrations import roles as setup

    settings = invocation.settings
    if not run:
        steps = setup.statements(settings.roles, schema)
        if as_json:
            click.echo(
                json.dumps({"applied": False, "statements": [dataclasses.asdict(s) for s in steps]}, indent=2)
            )
            return
        click.echo("\n".join(f"-- {step.purpose}\n{step.sql};" for step in steps))
        click.echo(_passwords(settings.roles), err=True)
        return
    result = setup.apply(settings, schema)
    if as_json:
        click.echo(json.dumps({"applied": True, **dataclasses.asdict(result)}, indent=2))
    else:
        click.echo(_applied(result, settings.roles))
    click.echo(_passwords(settings.roles), err=True)


def _applied(result: RolesResult, names: RoleNames) -> str:
    lines = [f"created   {role}" for role in result.created]
    lines += [f"exists    {role}" for role in result.existing]
    if result.adopted:
        lines.append(
            f"owner     {names.owner} now owns {len(result.adopted)} object(s): {', '.join(result.adopted)}"
        )
    lines.append(
        f"granted   {names.application}: rows of every table (SELECT, INSERT, UPDATE, DELETE), sequences; "
        f"{names.readonly}: SELECT; both on every table {names.owner} creates later"
    )
    return "\n".join(lines)


def _passwords(names: RoleNames) -> str:
    roles = ", ".join((names.owner, names.application, names.readonly))
    return (
        f"no password is set or shown here: set each of {roles} from psql with \\password ROLE "
        "(psql sends it hashed), or use your provider's console or IAM authentication; then point "
        f"DATABASE_MIGRATION_URL at {names.owner} and DATABASE_URL at {names.application}"
    )
