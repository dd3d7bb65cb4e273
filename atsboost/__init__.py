"""atsboost: a production-grade PostgreSQL layer for SQLAlchemy applications.

Importing the package is cheap and connects to nothing: the settings (and with
them SQLAlchemy) load on first use, so ``atsboost-db --help`` starts quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from atsboost.errors import (
    AtsboostError,
    ConfigurationError,
    DatabaseUnavailableError,
    EmbeddedServerError,
)

if TYPE_CHECKING:
    from atsboost.config.settings import Environment, Settings, get_settings, load_settings

__all__ = [
    "AtsboostError",
    "ConfigurationError",
    "DatabaseUnavailableError",
    "EmbeddedServerError",
    "Environment",
    "Settings",
    "__version__",
    "get_settings",
    "load_settings",
]

_LAZY = {"Environment", "Settings", "get_settings", "load_settings"}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # importlib.metadata takes 50 ms to load: only when asked
        from importlib.metadata import version

        return version("atsboost")
    if name in _LAZY:
        return getattr(importlib.import_module("atsboost.config.settings"), name)
    raise AttributeError(f"module 'atsboost' has no attribute {name!r}")
