import logging
import traceback
from pathlib import Path

import pytest

from atsboost.config.settings import Environment, load_settings
from atsboost.errors import ConfigurationError

SECRET = "pa55-w0rd-s3cret"
URL = f"postgresql://app:{SECRET}@db.example.com:5432/atsboost"


def settings_for(**environ: str):
    return load_settings(environ, cpus=2)


# --- environment ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("development", Environment.DEVELOPMENT),
        ("dev", Environment.DEVELOPMENT),
        ("testing", Environment.TESTING),
        ("TEST", Environment.TESTING),
        ("production", Environment.PRODUCTION),
        ("prod", Environment.PRODUCTION),
    ],
)
def test_environment_names_and_aliases(value, expected):
    settings = settings_for(ATSBOOST_ENV=value, DATABASE_URL=URL)
    assert settings.environment is expected
    assert settings.environment_origin == "ATSBOOST_ENV"


def test_node_env_is_honoured_when_atsboost_env_is_unset():
    settings = settings_for(NODE_ENV="production", DATABASE_URL=URL)
    assert settings.environment is Environment.PRODUCTION
    assert settings.environment_origin == "NODE_ENV"


def test_atsboost_env_wins_over_node_env():
    settings = settings_for(ATSBOOST_ENV="testing", NODE_ENV="production", DATABASE_URL=URL)
    assert settings.environment is Environment.TESTING


def test_default_is_development_with_the_embedded_server():
    settings = settings_for()
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.environment_origin == "default"
    assert settings.embedded
    assert settings.embedded_dir == Path(".atsboost").resolve()


def test_unknown_environment_names_variable_and_accepted_values():
    with pytest.raises(ConfigurationError) as info:
        settings_for(NODE_ENV="staging")
    message = str(info.value)
    assert "NODE_ENV='staging'" in message
    assert "development, testing or production" in message


@pytest.mark.parametrize("environment", ["testing", "production"])
def test_database_url_is_required_outside_development(environment):
    with pytest.raises(ConfigurationError, match=f"DATABASE_URL is not set; it is required in {environment}"):
        settings_for(ATSBOOST_ENV=environment)


# --- URL ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_postgres_schemes_map_to_psycopg3(scheme):
    settings = settings_for(DATABASE_URL=f"{scheme}://app:{SECRET}@db.example.com/atsboost")
    assert settings.url is not None
    assert settings.url.drivername == "postgresql+psycopg"
    assert settings.url.password == SECRET


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"mysql://app:{SECRET}@db/x", "uses the scheme 'mysql'"),
        (f"postgresql+psycopg2://app:{SECRET}@db/x", "uses the scheme 'postgresql+psycopg2'"),
        (f"postgresql://app:{SECRET}@db:port/x", "port that is not a number"),
        (f"not a url {SECRET}", "could not be parsed as a URL"),
        (f"postgresql://app:{SECRET}@db/x?sslmode=bogus", "sslmode='bogus', which libpq does not know"),
    ],
)
def test_bad_urls_are_explained_without_the_password(url, expected, caplog):
    with pytest.raises(ConfigurationError) as info:
        settings_for(DATABASE_URL=url)
    assert expected in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in "".join(traceback.format_exception(info.value))
    assert SECRET not in caplog.text


def test_password_never_in_repr_or_masked_url():
    settings = settings_for(ATSBOOST_ENV="production", DATABASE_URL=URL)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert settings.masked_url == "postgresql+psycopg://app:***@db.example.com:5432/atsboost"


# --- pool -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "cpus", "size", "idle"),
    [
        ("development", 2, 10, 30),
        ("testing", 2, 5, 10),
        ("production", 1, 3, 60),
        ("production", 2, 5, 60),
        ("production", 4, 9, 60),
        ("production", 64, 20, 60),
    ],
)
def test_pool_defaults_per_environment(environment, cpus, size, idle):
    settings = load_settings({"ATSBOOST_ENV": environment, "DATABASE_URL": URL}, cpus=cpus)
    assert (settings.pool.size, settings.pool.idle_timeout) == (size, idle)
    assert settings.pool.max_overflow == 0
    assert settings.pool.timeout == 30


def test_production_pool_uses_detected_cpus_when_not_given():
    settings = load_settings({"ATSBOOST_ENV": "production", "DATABASE_URL": URL})
    assert "usable CPUs" in settings.pool.size_origin
    assert 3 <= settings.pool.size <= 20


def test_pool_overrides():
    settings = settings_for(
        DATABASE_URL=URL,
        DATABASE_POOL_SIZE="7",
        DATABASE_MAX_OVERFLOW="3",
        DATABASE_POOL_TIMEOUT="4",
        DATABASE_IDLE_TIMEOUT="12",
        DATABASE_STATEMENT_TIMEOUT="1500",
        DATABASE_CONNECT_TIMEOUT="3",
        DATABASE_APPLICATION_NAME="billing-worker",
    )
    pool = settings.pool
    assert (pool.size, pool.max_overflow, pool.timeout, pool.idle_timeout) == (7, 3, 4, 12)
    assert pool.size_origin == "DATABASE_POOL_SIZE"
    assert settings.statement_timeout_ms == 1500
    assert settings.connect_timeout == 3
    assert settings.application_name == "billing-worker"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "DATABASE_POOL_SIZE",
            "ten",
            "DATABASE_POOL_SIZE='ten' is not usable; set it to a whole number from 1 to 1,000 (plain digits)",
        ),
        ("DATABASE_POOL_SIZE", "0", "DATABASE_POOL_SIZE='0' is not usable; set it to a whole number from 1"),
        (
            "DATABASE_MAX_OVERFLOW",
            "-1",
            "DATABASE_MAX_OVERFLOW='-1' is not usable; set it to a whole number from 0",
        ),
        ("DATABASE_POOL_TIMEOUT", "2.5", "DATABASE_POOL_TIMEOUT='2.5' is not usable"),
        ("DATABASE_IDLE_TIMEOUT", "0", "DATABASE_IDLE_TIMEOUT='0' is not usable"),
        ("DATABASE_STATEMENT_TIMEOUT", "-5", "DATABASE_STATEMENT_TIMEOUT='-5' is not usable"),
        ("DATABASE_CONNECT_TIMEOUT", "soon", "DATABASE_CONNECT_TIMEOUT='soon' is not usable"),
        ("DATABASE_SSL", "maybe", "DATABASE_SSL='maybe' is not a boolean; use true or false"),
        ("DATABASE_DISABLE_SSL", "2", "DATABASE_DISABLE_SSL='2' is not a boolean"),
        ("DATABASE_APPLICATION_NAME", "x" * 64, "PostgreSQL keeps at most 63"),
        ("DATABASE_MAX_LIFETIME", "0.001", "would replace every connection almost at once"),
        ("DATABASE_RETRY_MAX_SECONDS", "0", "leaves no time for even one attempt"),
        ("DATABASE_RETRY_MAX_SECONDS", "0.01", "DATABASE_RETRY_MAX_SECONDS='0.01' is not usable"),
        ("DATABASE_SSL_ROOT_CERT", "/etc/hostname", "holds no PEM certificate"),
    ],
)
def test_bad_numbers_and_flags_name_the_variable(variable, value, expected):
    with pytest.raises(ConfigurationError) as info:
        settings_for(DATABASE_URL=URL, **{variable: value})
    assert expected in str(info.value)
    assert SECRET not in str(info.value)


# --- SSL ------------------------------------------------------------------------------------


@pytest.fixture
def ca_file(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return str(path)


# fmt: off
SSL_CASES = [
    # environment, extra env, URL query, expected sslmode, expects root cert, expects warning
    ("development", {}, "", None, False, False),
    ("testing", {}, "", None, False, False),
    ("production", {}, "", "require", False, False),
    ("production", {"DATABASE_SSL_ROOT_CERT": "CA"}, "", "verify-full", True, False),
    ("development", {"DATABASE_SSL": "true"}, "", "require", False, False),
    ("development", {"DATABASE_SSL": "true", "DATABASE_SSL_ROOT_CERT": "CA"}, "", "verify-full", True, False),
    ("development", {"DATABASE_SSL_ROOT_CERT": "CA"}, "", "verify-full", True, False),
    ("testing", {"DATABASE_SSL_ROOT_CERT": "CA"}, "", "verify-full", True, False),
    ("production", {"DATABASE_SSL": "false"}, "", None, False, True),
    ("production", {"DATABASE_DISABLE_SSL": "true"}, "", "disable", False, True),
    ("development", {"DATABASE_DISABLE_SSL": "true"}, "", "disable", False, False),
    ("production", {"DATABASE_DISABLE_SSL": "true"}, "?sslmode=verify-full", "disable", False, True),
    ("production", {}, "?sslmode=verify-ca", "verify-ca", False, False),
    ("production", {}, "?sslmode=prefer", "prefer", False, True),
    ("production", {}, "?sslmode=allow", "allow", False, True),
    ("production", {}, "?sslmode=disable", "disable", False, True),
    ("development", {}, "?sslmode=disable", "disable", False, False),
    ("production", {"DATABASE_SSL": "true"}, "?sslmode=require", "require", False, False),
    ("production", {"DATABASE_SSL_ROOT_CERT": "CA"}, "?sslmode=verify-full", "verify-full", True, False),
    ("production", {}, "?sslmode=verify-full&sslrootcert=CA", "verify-full", True, False),
]
# fmt: on


@pytest.mark.parametrize(("environment", "extra", "query", "mode", "has_root", "warns"), SSL_CASES)
def test_ssl_precedence(environment, extra, query, mode, has_root, warns, ca_file, caplog):
    from atsboost.runtime.libpq import connect_args

    extra = {k: v.replace("CA", ca_file) for k, v in extra.items()}
    url = URL + query.replace("CA", ca_file)
    with caplog.at_level(logging.WARNING, logger="atsboost.config.settings"):
        settings = settings_for(ATSBOOST_ENV=environment, DATABASE_URL=url, **extra)
    args = connect_args(settings)
    assert args.get("sslmode") == mode
    assert ("sslrootcert" in args) is has_root
    if has_root:
        assert args["sslrootcert"] == ca_file
    assert bool(settings.warnings) is warns
    assert bool(caplog.records) is warns
    assert settings.url is not None and "sslmode" not in settings.url.query
    assert SECRET not in caplog.text


def test_disable_ssl_in_production_warns_loudly(caplog):
    with caplog.at_level(logging.WARNING):
        settings_for(ATSBOOST_ENV="production", DATABASE_URL=URL, DATABASE_DISABLE_SSL="true")
    assert "NOT encrypted" in caplog.text
    assert caplog.records[0].levelno == logging.WARNING


@pytest.mark.parametrize(
    ("extra", "query", "where"),
    [
        ({"DATABASE_SSL_ROOT_CERT": "/nonexistent/ca.pem"}, "", "DATABASE_SSL_ROOT_CERT"),
        ({}, "?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "sslrootcert in DATABASE_URL"),
    ],
)
def test_missing_ca_file_is_an_error(extra, query, where):
    with pytest.raises(ConfigurationError) as info:
        settings_for(ATSBOOST_ENV="production", DATABASE_URL=URL + query, **extra)
    assert f"{where} names '/nonexistent/ca.pem', which is not a readable file" in str(info.value)
    assert SECRET not in str(info.value)


def test_ssl_required_with_the_embedded_server_is_refused():
    with pytest.raises(ConfigurationError, match="embedded development server has no SSL"):
        settings_for(DATABASE_SSL="true")


# --- seeding --------------------------------------------------------------------------------


def test_admin_password_is_never_in_a_repr():
    settings = settings_for(DATABASE_URL=URL, ADMIN_INITIAL_PASSWORD="Very-Secret-Admin-1")
    assert settings.seed.admin_password == "Very-Secret-Admin-1"
    assert "Very-Secret-Admin-1" not in repr(settings)
    assert "Very-Secret-Admin-1" not in repr(settings.seed)


def test_admin_defaults():
    seed = settings_for().seed
    assert seed.admin_email == "admin@example.com"
    assert seed.admin_password is None and seed.admin_password_is_default


@pytest.mark.parametrize("email", ["admin", "admin@", "@example.com", "a b@example.com", "admin@localhost"])
def test_invalid_admin_email(email):
    with pytest.raises(ConfigurationError, match=f"ADMIN_EMAIL='{email}' is not a usable email address"):
        settings_for(ADMIN_EMAIL=email)


def test_a_ca_file_with_ssl_switched_off_is_a_contradiction(ca_file):
    with pytest.raises(ConfigurationError, match="DATABASE_SSL=false, but DATABASE_SSL_ROOT_CERT names a CA"):
        settings_for(
            ATSBOOST_ENV="testing", DATABASE_URL=URL, DATABASE_SSL="false", DATABASE_SSL_ROOT_CERT=ca_file
        )


def test_a_transaction_pooler_refuses_options_in_the_url():
    with pytest.raises(ConfigurationError, match="refuses that startup parameter"):
        settings_for(
            ATSBOOST_ENV="testing",
            DATABASE_URL=URL + "?options=-c%20work_mem%3D8MB",
            DATABASE_POOL_MODE="transaction",
        )


def test_the_url_s_parameters_win_and_say_so():
    settings = settings_for(
        ATSBOOST_ENV="testing", DATABASE_URL=URL + "?connect_timeout=4&application_name=web"
    )
    parameters = settings.connection_parameters()
    assert (parameters["connect_timeout"].value, parameters["connect_timeout"].source) == (
        "4",
        "DATABASE_URL",
    )
    assert (settings.connect_timeout, settings.application_name) == (4, "web")
    assert parameters["keepalives"].source == "DATABASE_STALL_TIMEOUT"
