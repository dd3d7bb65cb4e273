"""``atsboost-db metrics``: what Prometheus and Grafana need from atsboost."""

from __future__ import annotations

import click


@click.group()
def metrics() -> None:
    """Show what Prometheus and Grafana need from atsboost: a dashboard over its metrics."""


@metrics.command()
def dashboard() -> None:
    """Print the Grafana dashboard (JSON) to import: atsboost-db metrics dashboard > atsboost.json."""
    from atsboost.metrics.dashboard import rendered

    click.echo(rendered(), nl=False)
