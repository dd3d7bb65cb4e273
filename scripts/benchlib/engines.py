"""atsboost engines for the benchmarks, built from settings as an application would."""

from __future__ import annotations

import sqlalchemy
from sqlalchemy.ext.asyncio import AsyncEngine

from atsboost.config.settings import Settings, load_settings
from atsboost.runtime.aio.engine import create_async_engine
from atsboost.runtime.engine import create_engine


def bench_settings(url: str, environment: str, **variables: str) -> Settings:
    """Settings for ``environment`` with the health monitor off (it is not on the measured path)."""
    return load_settings(
        {
            "ATSBOOST_ENV": environment,
            "DATABASE_URL": url,
            "DATABASE_DISABLE_SSL": "true",
            "DATABASE_HEALTH_MONITOR": "false",
            **variables,
        }
    )


def atsboost_engine(url: str, environment: str, **variables: str) -> sqlalchemy.Engine:
    """The Engine atsboost.db builds in ``environment``."""
    return create_engine(bench_settings(url, environment, **variables))


def atsboost_async_engine(url: str, environment: str, **variables: str) -> AsyncEngine:
    """The AsyncEngine atsboost.aio builds in ``environment``."""
    return create_async_engine(bench_settings(url, environment, **variables))
