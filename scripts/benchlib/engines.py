"""atsboost engines for the benchmarks, built from settings as an application would."""

from __future__ import annotations

import sqlalchemy

from atsboost.config.settings import load_settings
from atsboost.runtime.engine import create_engine


def atsboost_engine(url: str, environment: str, **variables: str) -> sqlalchemy.Engine:
    """An atsboost engine in ``environment``, with the health monitor off (it is not on the measured path)."""
    return create_engine(
        load_settings(
            {
                "ATSBOOST_ENV": environment,
                "DATABASE_URL": url,
                "DATABASE_DISABLE_SSL": "true",
                "DATABASE_HEALTH_MONITOR": "false",
                **variables,
            }
        )
    )
