"""The subscription-plan catalogue: a versioned TOML file, validated before any database work.

Every error names the file, the plan and the field, and says what is accepted.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from atsboost.app.models import BILLING_INTERVALS
from atsboost.errors import CatalogueError

DEFAULT_CATALOGUE = "atsboost/app/seed_data/plans.toml"
_CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_MAX_INTEGER = 2**31 - 1  # the columns are PostgreSQL integers
_REQUIRED = ("code", "name", "price_cents", "billing_interval")


@dataclass(frozen=True)
class PlanSpec:
    """One plan as the catalogue describes it."""

    code: str
    name: str
    price_cents: int
    billing_interval: str
    currency: str = "USD"
    features: tuple[str, ...] = ()
    limits: dict[str, Any] = field(default_factory=dict)
    is_active: bool = True
    sort_order: int = 0


def load_catalogue(path: Path | None = None) -> list[PlanSpec]:
    """Read and validate a catalogue file (the one shipped with atsboost by default)."""
    if path is None:
        label = DEFAULT_CATALOGUE
        data = (resources.files("atsboost.app") / "seed_data" / "plans.toml").read_bytes()
    else:
        label = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CatalogueError(f"{label}: cannot read the plan catalogue ({exc.strerror})") from None
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogueError(f"{label}: not a valid TOML file ({exc})") from None
    return _plans(label, document)


def _plans(label: str, document: dict[str, Any]) -> list[PlanSpec]:
    unknown = sorted(set(document) - {"version", "plans"})
    if unknown:
        raise CatalogueError(f"{label}: unknown top-level key {unknown[0]!r}; only 'version' and 'plans'")
    if document.get("version") != 1:
        raise CatalogueError(f"{label}: 'version' must be 1 (got {document.get('version')!r})")
    raw_plans = document.get("plans")
    if not isinstance(raw_plans, list) or not raw_plans:
        raise CatalogueError(f"{label}: no plans; add at least one [[plans]] table")
    plans = [_plan(label, position, raw) for position, raw in enumerate(raw_plans, 1)]
    seen: dict[str, int] = {}
    for position, plan in enumerate(plans, 1):
        if plan.code in seen:
            raise CatalogueError(
                f"{label}: plan {plan.code!r} (#{position}), field 'code': "
                f"duplicate of plan #{seen[plan.code]}; "
                "every code must be unique"
            )
        seen[plan.code] = position
    return plans


def _plan(label: str, position: int, raw: Any) -> PlanSpec:
    if not isinstance(raw, dict):
        raise CatalogueError(f"{label}: plan #{position} is not a table; write it as [[plans]]")
    code = raw.get("code")
    where = f"{label}: plan {code!r} (#{position})" if isinstance(code, str) else f"{label}: plan #{position}"
    for name in raw:
        if name not in _FIELDS:
            raise CatalogueError(
                f"{where}, field {name!r}: unknown field; the fields are {', '.join(_FIELDS)}"
            )
    for name in _REQUIRED:
        if name not in raw:
            raise CatalogueError(f"{where}, field {name!r}: missing; every plan needs {', '.join(_REQUIRED)}")
    values: dict[str, Any] = {"sort_order": position * 10}  # the catalogue's order, unless given
    for name, value in raw.items():
        valid, accepted, convert = _FIELDS[name]
        if not valid(value):
            raise CatalogueError(f"{where}, field {name!r}: {accepted}, got {value!r}")
        values[name] = convert(value)
    return PlanSpec(**values)


def _whole_non_negative(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_INTEGER


def _list_of_text(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) and item.strip() for item in value)


def _flat_table(value: Any) -> bool:
    # JSON (and so jsonb) has no inf or nan, which TOML allows; a negative limit limits nothing.
    return isinstance(value, dict) and all(
        isinstance(v, bool | str) or (isinstance(v, int | float) and math.isfinite(v) and v >= 0)
        for v in value.values()
    )


def _text(limit: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and 0 < len(v.strip()) <= limit


def _keep(value: Any) -> Any:
    return value


# Each field: what is valid, what the error says is accepted, and how the value is kept.
_FIELDS: dict[str, tuple[Callable[[Any], bool], str, Callable[[Any], Any]]] = {
    "code": (
        lambda v: isinstance(v, str) and bool(_CODE.fullmatch(v)),
        "must be lower-case letters, digits, '_' or '-' (at most 64)",
        _keep,
    ),
    "name": (_text(120), "must be a non-empty text of at most 120 characters", _keep),
    "price_cents": (
        _whole_non_negative,
        f"must be a whole number of cents from 0 to {_MAX_INTEGER:,}",
        _keep,
    ),
    "billing_interval": (
        lambda v: v in BILLING_INTERVALS,
        f"must be one of {', '.join(BILLING_INTERVALS)}",
        _keep,
    ),
    "currency": (
        lambda v: isinstance(v, str) and bool(_CURRENCY.fullmatch(v)),
        "must be a three-letter upper-case ISO 4217 code such as USD",
        _keep,
    ),
    "features": (_list_of_text, "must be a list of texts", tuple),
    "limits": (_flat_table, "must be a table of names to numbers from 0 up, booleans or texts", dict),
    "is_active": (lambda v: isinstance(v, bool), "must be true or false", _keep),
    "sort_order": (_whole_non_negative, f"must be a whole number from 0 to {_MAX_INTEGER:,}", _keep),
}
