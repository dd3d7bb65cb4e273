"""Database URLs are read without SQLAlchemy, exactly as SQLAlchemy's make_url reads them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from atsboost.config.parameters import MANAGED
from atsboost.config.urls import parse_database_url
from atsboost.errors import ConfigurationError

SECRET = "s3cr%40t:pw"

URLS = [
    f"postgresql://app:{SECRET}@db.example.com:5432/atsboost",
    "postgresql+psycopg://app@db.example.com/atsboost?application_name=x&connect_timeout=3",
    "postgres://app:pw@[::1]:6432/db",
    "postgresql://postgres@/db?host=/tmp/pg%20socket&options=-c%20work_mem%3D64MB",
    "postgresql://user%20name:pw@host/",
    "postgresql://host",
    "postgresql://app@h/db?keepalives_idle=4&tcp_user_timeout=9000",
    "postgresql://app@h1,h2/db?target_session_attrs=read-write",
    "postgresql://app:pa?ss@h/db",  # a password may hold '?' and '#' unencoded, as SQLAlchemy reads it
    "postgresql://app:pa#ss@h:5433/db?application_name=x",
    "postgresql://app@h/db?host=a&host=b",
]


@pytest.mark.parametrize("raw", URLS)
def test_parts_and_masked_form_match_sqlalchemy(raw: str) -> None:
    parsed = parse_database_url(raw, "DATABASE_URL").url
    given = make_url(raw).set(drivername="postgresql+psycopg")
    # the libpq parameters atsboost also sets leave the query, to win over atsboost's (config.parameters)
    expected = given.difference_update_query(MANAGED)
    assert parsed.parameters == {k: v for k, v in given.query.items() if k in MANAGED}

    assert parsed.sqlalchemy() == expected
    assert parsed.masked() == expected.render_as_string(hide_password=True)
    assert "s3cr" not in parsed.masked() and "s3cr" not in repr(parsed)


def test_libpq_parameters_are_the_dialects() -> None:
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    for raw in URLS[:-1]:
        parsed = parse_database_url(raw, "DATABASE_URL").url
        _, expected = PGDialect_psycopg().create_connect_args(parsed.sqlalchemy())
        assert parsed.libpq() == expected


def test_a_host_list_with_ports_becomes_sqlalchemys_host_parameters() -> None:
    parsed = parse_database_url("postgresql://app:pw@h1:5432,h2:5433/db?target_session_attrs=read-write", "X")
    expected = make_url(
        "postgresql+psycopg://app:pw@/db?host=h1:5432&host=h2:5433&target_session_attrs=read-write"
    )
    assert parsed.url.sqlalchemy() == expected
    with pytest.raises(ConfigurationError, match="host list"):
        parse_database_url("postgresql://app@h1:5432,/db", "X")


def test_an_at_sign_in_a_query_value_is_not_a_password() -> None:
    url = parse_database_url("postgresql://h:5432/db?application_name=a@b", "DATABASE_URL").url
    assert (url.host, url.port, url.database, url.password) == ("h", 5432, "db", None)
    assert url.parameters == {"application_name": "a@b"}


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://app:s3cr@t@h/db",  # a second '@': which one ends the password?
        "postgresql://app:s3cr/t@h/db",  # a '/' would end the host
        "postgresql://ap/p:s3cret@h/db",
    ],
)
def test_unencoded_at_or_slash_in_the_user_info_is_refused_with_the_fix(raw: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        parse_database_url(raw, "DATABASE_URL")
    message = str(refused.value)
    assert "not percent-encoded" in message and "@ as %40" in message
    assert "s3cr" not in message


def test_repeated_option_defers_to_sqlalchemys_dialect() -> None:
    assert parse_database_url(URLS[-1], "DATABASE_URL").url.libpq() is None


def test_reading_settings_loads_neither_sqlalchemy_nor_the_driver() -> None:
    code = (
        "import sys; from atsboost.config.settings import read_settings; read_settings(); "
        "print(sorted(m for m in ('sqlalchemy', 'psycopg', 'alembic') if m in sys.modules))"
    )
    env = {"DATABASE_URL": "postgresql://app:pw@db.example.com/x", "ATSBOOST_ENV": "production"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("postgresql://", "names no host"),
        ("postgresql:///db", "names no host"),
        ("postgresql://u:P@ss/w0rd@host/db", "not percent-encoded"),
        ("postgresql://u:p@h1:5432,h2:notaport/db", "a port that is not a number"),
        ("postgresql://u@h/db?keepalives=0", "0 turns off the keepalives"),
        ("postgresql://u@h/db?connect_timeout=0", "0 waits for ever"),
        ("postgresql://u@h/db?tcp_user_timeout=0", "0 lets unacknowledged data wait"),
        ("postgresql://u@h/db?connect_timeout=abc", "give a whole number"),
        ("postgresql://u@h/db?target_session_attrs=bogus", "libpq does not know"),
        ("postgresql://u@h/db?connect_timeout=3&connect_timeout=4", "repeats connect_timeout"),
    ],
)
def test_a_url_libpq_cannot_keep_atsboost_s_bounds_with_is_one_line(raw: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as refused:
        parse_database_url(raw, "DATABASE_URL")
    message = str(refused.value)
    assert "\n" not in message and "P@ss" not in message and "w0rd" not in message
