"""Every malformed setting is refused at start-up, naming the variable, before anything is written."""

import pytest

from atsboost.config.settings import load_settings
from atsboost.errors import ConfigurationError

BASE = {"ATSBOOST_ENV": "testing", "DATABASE_URL": "postgresql://app@db.internal/ats"}
PLANTED = "Pl4nted-s3cret"

MALFORMED = [
    *[("DATABASE_POOL_SIZE", v) for v in ("ten", "0", "1e23", "1_0", "5.0", "-1", "1001", "0x10")],
    *[("DATABASE_MAX_OVERFLOW", v) for v in ("-1", "1001", "x")],
    *[("DATABASE_POOL_TIMEOUT", v) for v in ("2.5", "inf", "3601")],
    *[("DATABASE_IDLE_TIMEOUT", v) for v in ("0", "86401", "nan")],
    *[("DATABASE_STATEMENT_TIMEOUT", v) for v in ("-5", "1e9", "99999999999")],
    *[("DATABASE_CONNECT_TIMEOUT", v) for v in ("soon", "0", "3601")],
    *[("DATABASE_RETRY_ATTEMPTS", v) for v in ("0", "1001", "many")],
    *[("DATABASE_RETRY_MAX_SECONDS", v) for v in ("inf", "-1", "nan", "1e400")],
    *[("DATABASE_VALIDATE_AFTER", v) for v in ("-0.5", "forever")],
    *[("DATABASE_HEALTH_INTERVAL", v) for v in ("0", "0.05", "Infinity")],
    *[("DATABASE_LONG_QUERY_SECONDS", v) for v in ("0", "NaN")],
    *[("DATABASE_LEAK_THRESHOLD", v) for v in ("-1", "1e99")],
    *[("MIGRATION_LOCK_TIMEOUT", v) for v in ("inf", "0", "1e999", "five")],
    *[("MIGRATION_STATEMENT_TIMEOUT", v) for v in ("nan", "999999999")],
    *[("MIGRATION_LOCK_WAIT", v) for v in ("-1", "inf")],
    *[("MIGRATION_LOCK_RETRIES", v) for v in ("-1", "101", "2.5")],
    ("DATABASE_SSL", "maybe"),
    ("DATABASE_DISABLE_SSL", "yes please"),
    ("MIGRATION_FORCE", "sure"),
    ("DATABASE_HEALTH_MONITOR", "10"),
    ("ATSBOOST_ENV", "staging"),
    ("DATABASE_POOL_MODE", "statement"),
    *[("DATABASE_APP_ROLE", v) for v in ("App", "my app", "pg_app", "1app", "a" * 64, 'x"; DROP ROLE y')],
    ("DATABASE_OWNER_ROLE", "atsboost_app"),  # the application's default: three roles, three names
    ("DATABASE_READONLY_ROLE", "Robert'); --"),
    ("DATABASE_APPLICATION_NAME", "x" * 64),
    ("DATABASE_APPLICATION_NAME", "naïve"),
    *[("ADMIN_EMAIL", v) for v in ("admin", "a" * 300 + "@x.io", "admin@localhost", "a b@example.com")],
    ("DATABASE_URL", f"mysql://u:{PLANTED}@h/db"),
    ("DATABASE_URL", f"postgresql://u:{PLANTED}@h:port/db"),
    ("DATABASE_URL", f"postgresql://app:{PLANTED}@Tail@host/db"),
    ("DATABASE_URL", f"postgresql://app:{PLANTED}/x@host/db"),
    ("DATABASE_URL", f"postgresql://u:{PLANTED}@h/db?sslmode=sometimes"),
    ("DATABASE_URL", f"postgresql://u:a@h/db?password={PLANTED}"),
    ("DATABASE_URL", f"postgresql://u@h/db?sslmode=require&sslmode=disable&password={PLANTED}"),
]


def test_the_table_is_large():
    assert len(MALFORMED) >= 40


@pytest.mark.parametrize(("variable", "value"), MALFORMED)
def test_a_malformed_setting_is_refused_naming_the_variable(variable, value):
    with pytest.raises(ConfigurationError) as info:
        load_settings({**BASE, variable: value})
    message = str(info.value)
    assert variable in message
    assert PLANTED not in message
    assert ";" in message  # what is wrong; then how to fix it
