"""Who the first admin is: ADMIN_EMAIL and ADMIN_INITIAL_PASSWORD, checked at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from atsboost.config.envvars import EnvironmentVariables
from atsboost.errors import ConfigurationError

DEFAULT_ADMIN_EMAIL = "admin@example.com"
DEFAULT_ADMIN_PASSWORD = "ChangeMe123!"  # the guide's documented default; refused in production


@dataclass(frozen=True)
class SeedSettings:
    """Who the first admin is. The password is never part of a repr."""

    admin_email: str
    admin_password: str | None = field(repr=False)

    @property
    def admin_password_is_default(self) -> bool:
        """True when ADMIN_INITIAL_PASSWORD is unset or is the guide's published default."""
        return self.admin_password in (None, DEFAULT_ADMIN_PASSWORD)


def read_seed_settings(env: EnvironmentVariables) -> SeedSettings:
    """Read the first admin's email (checked now, before any work) and password (never stripped)."""
    given = env.text("ADMIN_EMAIL")
    password = env.raw("ADMIN_INITIAL_PASSWORD")  # not stripped: spaces may be part of a password
    if given is None:
        return SeedSettings(admin_email=DEFAULT_ADMIN_EMAIL, admin_password=password or None)
    # Loaded only to check an address that was given (it takes 30 ms to import).
    from email_validator import EmailNotValidError, validate_email

    try:
        email = validate_email(given, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        shown = given if len(given) <= 80 else given[:77] + "..."
        raise ConfigurationError(
            f"ADMIN_EMAIL={shown!r} is not a usable email address ({exc}); set it to the first admin's "
            "address, e.g. ops@yourcompany.com"
        ) from None
    return SeedSettings(admin_email=email, admin_password=password or None)
