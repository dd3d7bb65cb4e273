"""Who connects: the names of the schema's owner, the application's role and the read-only role.

``atsboost-db roles`` creates and grants them; ``health`` judges the role an
application connects as against them. The names are plain identifiers, so the SQL
that uses them reads as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from atsboost.config.envvars import EnvironmentVariables
from atsboost.errors import ConfigurationError

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class RoleNames:
    """The three roles of least privilege: owner (migrates), application (rows only), read-only."""

    owner: str = "atsboost_owner"
    application: str = "atsboost_app"
    readonly: str = "atsboost_readonly"


def read_role_names(env: EnvironmentVariables) -> RoleNames:
    """Read DATABASE_OWNER_ROLE, DATABASE_APP_ROLE and DATABASE_READONLY_ROLE; refuse unusable names."""
    default = RoleNames()
    names = RoleNames(
        owner=_name(env, "DATABASE_OWNER_ROLE", default.owner),
        application=_name(env, "DATABASE_APP_ROLE", default.application),
        readonly=_name(env, "DATABASE_READONLY_ROLE", default.readonly),
    )
    if len({names.owner, names.application, names.readonly}) < 3:
        raise ConfigurationError(
            f"DATABASE_OWNER_ROLE, DATABASE_APP_ROLE and DATABASE_READONLY_ROLE must be three different "
            f"roles (they are {names.owner}, {names.application}, {names.readonly}); give each its own name"
        )
    return names


def _name(env: EnvironmentVariables, variable: str, default: str) -> str:
    name = env.text(variable) or default
    if not _NAME.fullmatch(name) or name.startswith("pg_"):
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise ConfigurationError(
            f"{variable}={shown!r} is not a usable role name; use lowercase letters, digits and _ "
            "(at most 63, not starting with a digit or pg_), e.g. myapp_app"
        )
    return name
