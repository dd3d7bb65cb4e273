"""Typed, validating reads of environment-style variables (a mapping, never os.environ itself)."""

from __future__ import annotations

import typing
from collections.abc import Mapping

from atsboost.errors import ConfigurationError

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


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
    def integer(self, name: str, default: int, *, minimum: int) -> int: ...
    @typing.overload
    def integer(self, name: str, default: None, *, minimum: int) -> int | None: ...
    def integer(self, name: str, default: int | None, *, minimum: int) -> int | None:
        """Return a whole number >= ``minimum``, or ``default`` when unset."""
        value = self.text(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigurationError(
                f"{name}={value!r} is not a whole number; set it to an integer >= {minimum}"
            ) from None
        if number < minimum:
            raise ConfigurationError(f"{name}={number} is too small; set it to an integer >= {minimum}")
        return number

    def seconds(self, name: str, default: float, *, minimum: float) -> float:
        """Return a number of seconds >= ``minimum`` (decimals allowed), or ``default`` when unset."""
        value = self.text(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigurationError(
                f"{name}={value!r} is not a number of seconds; "
                f"set it to a number >= {minimum:g} (e.g. 5 or 0.5)"
            ) from None
        if not number >= minimum:
            raise ConfigurationError(
                f"{name}={value} is too small; set it to a number of seconds >= {minimum:g}"
            )
        return number
