"""Run-time resilience settings: the retry budget, stale and dead connections, the monitor, leaks."""

from __future__ import annotations

from dataclasses import dataclass

from atsboost.config.environment import Environment
from atsboost.config.envvars import EnvironmentVariables
from atsboost.errors import ConfigurationError

_MIN_LIFETIME = 1.0


@dataclass(frozen=True)
class RuntimeSettings:
    """Resilience at run time: retry budget, stale-connection checks, monitor, leak detection."""

    validate_after: float
    retry_attempts: int | None  # None: as many as fit in retry_max_seconds
    retry_max_seconds: float
    monitor: bool
    health_interval: float
    long_query_seconds: float
    leak_threshold: float | None
    stall_timeout: float = 15.0  # a dead network link is noticed within this many seconds
    max_lifetime: float | None = 1800.0  # connections are replaced before this age (jittered)
    metrics: bool = True  # count pool, transaction and retry figures (atsboost.metrics)
    primary_check_interval: float = 2.0  # a host list's roles and timelines are checked this often
    pipeline_begin: bool = False  # BEGIN travels with a transaction's first statement (runtime.pipeline)


def read_runtime_settings(env: EnvironmentVariables, environment: Environment) -> RuntimeSettings:
    """Read the run-time settings: retry budget, stale-connection checks, monitor, leaks, metrics."""
    production = environment is Environment.PRODUCTION
    leak_default = None if production else 60.0
    leak = env.seconds("DATABASE_LEAK_THRESHOLD", leak_default or 0.0, minimum=0.0)
    return RuntimeSettings(
        validate_after=env.seconds("DATABASE_VALIDATE_AFTER", 1.0, minimum=0.0),
        retry_attempts=env.integer("DATABASE_RETRY_ATTEMPTS", None, minimum=1, maximum=1000),
        stall_timeout=env.seconds("DATABASE_STALL_TIMEOUT", 15.0, minimum=2.0, maximum=600.0),
        max_lifetime=_max_lifetime(env),
        retry_max_seconds=_retry_max_seconds(env),
        monitor=env.boolean("DATABASE_HEALTH_MONITOR", default=production),
        health_interval=env.seconds("DATABASE_HEALTH_INTERVAL", 30.0, minimum=0.1),
        long_query_seconds=env.seconds("DATABASE_LONG_QUERY_SECONDS", 60.0, minimum=0.1),
        leak_threshold=leak if leak > 0 else None,
        metrics=env.boolean("DATABASE_METRICS", default=True),
        primary_check_interval=env.seconds(
            "DATABASE_PRIMARY_CHECK_INTERVAL", 2.0, minimum=0.1, maximum=600.0
        ),
        pipeline_begin=env.boolean("DATABASE_PIPELINE_BEGIN", default=False),
    )


def _max_lifetime(env: EnvironmentVariables) -> float | None:
    """DATABASE_MAX_LIFETIME: 0 for no limit, else at least a second: less only churns connections."""
    seconds = env.seconds("DATABASE_MAX_LIFETIME", 1800.0, minimum=0.0)
    if 0 < seconds < _MIN_LIFETIME:
        raise ConfigurationError(
            f"DATABASE_MAX_LIFETIME={seconds:g} would replace every connection almost at once; set it to "
            f"at least {_MIN_LIFETIME:g} seconds (1800 by default), or 0 for no limit"
        )
    return seconds or None


def _retry_max_seconds(env: EnvironmentVariables) -> float:
    """DATABASE_RETRY_MAX_SECONDS: the deadline of a run_transaction call, which needs room for one try."""
    if env.text("DATABASE_RETRY_MAX_SECONDS") in ("0", "0.0"):
        raise ConfigurationError(
            "DATABASE_RETRY_MAX_SECONDS=0 leaves no time for even one attempt; give the deadline in seconds "
            "(15 by default), and set DATABASE_RETRY_ATTEMPTS=1 to turn retrying off"
        )
    return env.seconds("DATABASE_RETRY_MAX_SECONDS", 15.0, minimum=0.1)
