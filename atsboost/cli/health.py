"""``atsboost-db health``: the operator's report, as text, JSON or one line for a monitor."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from atsboost.cli.base import Invocation, json_option, pass_invocation
from atsboost.errors import AtsboostError

if TYPE_CHECKING:
    from atsboost.health.checks import Thresholds
    from atsboost.migrations import MigrationStatus

# Option -> (Thresholds field, scale, help). The numbers themselves live in Thresholds only.
_LIMITS = {
    "warning_connections": ("connections_warning", 100, "Percent of usable connection slots."),
    "critical_connections": ("connections_critical", 100, "Percent of usable connection slots."),
    "critical_query_seconds": ("long_query_critical", 1, "Seconds a query may run."),
    "warning_idle_transaction": ("idle_in_transaction_warning", 1, "Seconds idle in a transaction."),
    "critical_idle_transaction": ("idle_in_transaction_critical", 1, "Seconds idle in a transaction."),
    "warning_cache_hit": ("cache_hit_warning", 100, "Percent; lower is worse."),
    "critical_cache_hit": ("cache_hit_critical", 100, "Percent; lower is worse."),
    "warning_replication_lag": ("replication_lag_warning", 1, "Seconds of replay lag."),
    "critical_replication_lag": ("replication_lag_critical", 1, "Seconds of replay lag."),
}


class _Limit(click.FloatRange):
    """A finite number in range: a percent from 0 to 100, or seconds from 0 (NaN passes FloatRange)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


# Each warning option with its critical twin (the query's warning is --long-query-seconds).
_PAIRS = [
    ("warning_connections", "critical_connections"),
    ("warning_idle_transaction", "critical_idle_transaction"),
    ("warning_cache_hit", "critical_cache_hit"),
    ("warning_replication_lag", "critical_replication_lag"),
]


def _limit_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option, (_, scale, text) in reversed(_LIMITS.items()):
        name = "--" + option.replace("_", "-")
        kind = _Limit(0, 100) if scale == 100 else _Limit(0)
        fn = click.option(name, option, type=kind, help=f"{text} [default: see docs/health.md]")(fn)
    return fn


@click.command()
@json_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "prometheus"]),
    default="text",
    show_default=True,
    help="prometheus: the figures as metrics, for a textfile collector (needs atsboost[prometheus]).",
)
@click.option("--check", is_flag=True, help="Print one line and exit 0 OK, 1 WARNING, 2 CRITICAL.")
@click.option(
    "--long-query-seconds",
    type=float,
    help="List (and warn about) queries running longer. [default: DATABASE_LONG_QUERY_SECONDS, 60]",
)
@_limit_options
@pass_invocation
def health(
    invocation: Invocation,
    /,
    *,
    as_json: bool,
    output_format: str,
    check: bool,
    long_query_seconds: float | None,
    **limits: float | None,
) -> None:
    """Report on the database: connection, size, tables, connections, long queries, blocking, indexes."""
    from atsboost.config.environment import Environment
    from atsboost.health import evaluate, overall, report_for, summary
    from atsboost.health.checks import EXIT_CODES
    from atsboost.health.render import render

    settings = invocation.settings
    long_query = long_query_seconds or settings.runtime.long_query_seconds
    production = settings.environment is Environment.PRODUCTION
    thresholds = _thresholds(long_query, limits, production=production)
    status = _migration_status(invocation)
    result = report_for(settings, long_query_seconds=long_query, migration_status=status)
    checks = evaluate(result, thresholds)
    if output_format == "prometheus":
        try:
            from atsboost.health.exposition import exposition
        except ImportError as missing:  # the extra is not installed: its message says which
            raise click.ClickException(str(missing)) from None
        click.echo(exposition(result, checks), nl=False)
    elif as_json or output_format == "json":
        data = {
            **result.as_dict(),
            "status": overall(checks),
            "checks": [dataclasses.asdict(c) for c in checks],
        }
        click.echo(json.dumps(data, indent=2, default=str))
    elif check:
        click.echo(summary(checks))
    elif result.connection.reachable:
        click.echo(render(result, checks, long_query_seconds=long_query))
    if check:
        raise SystemExit(EXIT_CODES[overall(checks)])
    if not result.connection.reachable:  # the report (JSON, pg_up 0) is out; the error and its fix follow
        raise Unreachable(result.connection.error or "the database could not be reached")


class Unreachable(click.ClickException):
    """The database could not be reached: exit 2 in every format, as ``--check`` says CRITICAL."""

    exit_code = 2


def _thresholds(long_query: float, limits: dict[str, float | None], *, production: bool) -> Thresholds:
    from atsboost.health.checks import Thresholds

    given: dict[str, Any] = {_LIMITS[o][0]: v / _LIMITS[o][1] for o, v in limits.items() if v is not None}
    thresholds = dataclasses.replace(
        Thresholds.for_environment(production=production, long_query_warning=long_query), **given
    )
    for warning, critical in _PAIRS:
        (field, scale, _), critical_field = _LIMITS[warning], _LIMITS[critical][0]
        warn, crit = getattr(thresholds, field), getattr(thresholds, critical_field)
        if (crit > warn) if "cache_hit" in warning else (crit < warn):  # lower is worse for the cache
            raise click.UsageError(
                f"--{critical.replace('_', '-')} ({crit * scale:g}) would turn CRITICAL before "
                f"--{warning.replace('_', '-')} ({warn * scale:g}) turns WARNING; give a critical "
                "threshold past the warning one"
            )
    if limits.get("critical_query_seconds") is not None and thresholds.long_query_critical < long_query:
        raise click.UsageError(
            f"--critical-query-seconds ({thresholds.long_query_critical:g}) is below the long-query warning "
            f"({long_query:g} s, from --long-query-seconds or DATABASE_LONG_QUERY_SECONDS); give a "
            "critical threshold past the warning one"
        )
    return thresholds


def _migration_status(invocation: Invocation) -> MigrationStatus | None:
    """Return the migration state for the report, or None when it cannot be read."""
    from atsboost import migrations

    try:
        return migrations.status(invocation.settings)
    except AtsboostError:
        return None
