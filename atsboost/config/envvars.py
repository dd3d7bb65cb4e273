"""Typed, validating reads of environment-style variables (a mapping, never os.environ itself)."""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Mapping

from atsboost.errors import ConfigurationError

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_WHOLE = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?|\.[0-9]+")
MAX_WHOLE = 1_000_000
MAX_SECONDS = 7 * 24 * 3600.0  # a week: any longer wait is a typo


def parse_boolean(name: str, value: str) -> bool:
    """Read a boolean the way every atsboost flag is read; name the variable when it is not one."""
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ConfigurationError(
        f"{name}={value!r} is not a boolean; use true or false (also accepted: 1/0, yes/no, on/off)"
    )


class EnvironmentVariables:
    """Typed, validating access to the environment mapping."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        """Return the value exactly as set (for secrets, where spaces count), or None."""
        return self._environ.get(name)

    def text(self, name: str) -> str | None:
        """Return the stripped value, or None when unset or empty."""
        value = self._environ.get(name, "").strip()
        return value or None

    def boolean(self, name: str, *, default: bool) -> bool:
        """Return a boolean variable, or ``default`` when unset."""
        value = self.text(name)
        return default if value is None else parse_boolean(name, value)

    @typing.overload
    def integer(self, name: str, default: int, *, minimum: int, maximum: int = ...) -> int: ...
    @typing.overload
    def integer(self, name: str, default: None, *, minimum: int, maximum: int = ...) -> int | None: ...
    def integer(
        self, name: str, default: int | None, *, minimum: int, maximum: int = MAX_WHOLE
    ) -> int | None:
        """Return a whole number within [minimum, maximum], or ``default`` when unset.

        Only plain digits count: ``1e3``, ``1_000`` and ``5.0`` are refused, so a typo is
        never read as a different number.
        """
        value = self.text(name)
        if value is None:
            return default
        if not _WHOLE.fullmatch(value) or not minimum <= int(value) <= maximum:
            raise ConfigurationError(
                f"{name}={value!r} is not usable; set it to a whole number from {minimum} to {maximum:,} "
                "(plain digits)"
            )
        return int(value)

    def seconds(self, name: str, default: float, *, minimum: float, maximum: float = MAX_SECONDS) -> float:
        """Return a finite number of seconds within [minimum, maximum] (decimals allowed), or ``default``."""
        value = self.text(name)
        if value is None:
            return default
        try:
            number = float(value) if _DECIMAL.fullmatch(value) else math.nan
        except ValueError:
            number = math.nan
        if not minimum <= number <= maximum:  # also false for nan and inf
            raise ConfigurationError(
                f"{name}={value!r} is not usable; set it to a number of seconds from {minimum:g} to "
                f"{maximum:g} (e.g. 5 or 0.5)"
            )
        return number
