"""Which environment the application runs in: it chooses pool sizes, SSL defaults and safety rules."""

from __future__ import annotations

import enum

from atsboost.config.envvars import EnvironmentVariables
from atsboost.errors import ConfigurationError


class Environment(enum.Enum):
    """Where the application runs; it chooses pool sizes, SSL defaults and safety rules."""

    DEVELOPMENT = "development"
    TESTING = "testing"
    PRODUCTION = "production"


_NAMES = {
    "development": Environment.DEVELOPMENT,
    "dev": Environment.DEVELOPMENT,
    "testing": Environment.TESTING,
    "test": Environment.TESTING,
    "production": Environment.PRODUCTION,
    "prod": Environment.PRODUCTION,
}


def read_environment(env: EnvironmentVariables) -> tuple[Environment, str]:
    """Return the environment and the variable it came from: ATSBOOST_ENV, else NODE_ENV, else development."""
    for name in ("ATSBOOST_ENV", "NODE_ENV"):
        value = env.text(name)
        if value is None:
            continue
        try:
            return _NAMES[value.lower()], name
        except KeyError:
            raise ConfigurationError(
                f"{name}={value!r} is not a known environment; use development, testing or "
                "production (or dev, test, prod)"
            ) from None
    return Environment.DEVELOPMENT, "default"
