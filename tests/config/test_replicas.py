"""DATABASE_REPLICA_URLS and its companions: one replica per URL or per host, secrets kept out."""

import pytest

from atsboost.config.render import describe, render
from atsboost.config.settings import load_settings
from atsboost.errors import ConfigurationError

BASE = {"ATSBOOST_ENV": "testing", "DATABASE_URL": "postgresql://app:s3cret@primary:5432/shop"}


def settings(**variables: str):
    return load_settings({**BASE, **variables})


def test_no_replicas_by_default():
    assert settings().replicas.urls == ()
    assert "every transaction goes to the primary" in render(describe(settings()))


def test_comma_separated_urls_are_one_replica_each():
    found = settings(
        DATABASE_REPLICA_URLS="postgresql://app:s3cret@r1:5432/shop, postgres://reader:p,w@r2:6432/shop"
    ).replicas
    assert [(u.host, u.port, u.username, u.password) for u in found.urls] == [
        ("r1", 5432, "app", "s3cret"),
        ("r2", 6432, "reader", "p,w"),
    ]


def test_a_libpq_host_list_is_one_replica_per_host():
    found = settings(DATABASE_REPLICA_URLS="postgresql://app:s3cret@r1:5432,r2:5433/shop?sslmode=require")
    assert [(u.host, u.port, u.database) for u in found.replicas.urls] == [
        ("r1", 5432, "shop"),
        ("r2", 5433, "shop"),
    ]


def test_the_limits_are_read_and_checked():
    found = settings(DATABASE_REPLICA_MAX_LAG="2.5", DATABASE_REPLICA_STICKY_SECONDS="0").replicas
    assert (found.max_lag, found.sticky_seconds) == (2.5, 0.0)
    with pytest.raises(ConfigurationError, match="DATABASE_REPLICA_MAX_LAG"):
        settings(DATABASE_REPLICA_MAX_LAG="soon")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("postgresql://app:s3cret@r1/shop,,postgresql://app:s3cret@r2/shop", "empty entry"),
        ("postgresql://app:s3cret@r1/shop,", "empty entry"),
        ("mysql://app:s3cret@r1/shop", "PostgreSQL only"),
    ],
)
def test_a_bad_list_is_refused_without_echoing_a_password(value, problem):
    with pytest.raises(ConfigurationError) as caught:
        settings(DATABASE_REPLICA_URLS=value)
    assert "DATABASE_REPLICA_URLS" in str(caught.value) and problem in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_config_shows_the_replicas_masked_and_their_connections(invoke):
    shown = invoke(
        "config",
        env={**BASE, "DATABASE_REPLICA_URLS": "postgresql://app:s3cret@r1:5432,r2:5432/shop"},
    )
    assert shown.returncode == 0, shown.stderr
    assert "read replicas" in shown.stdout and "r1:5432" in shown.stdout and "r2:5432" in shown.stdout
    assert "s3cret" not in shown.stdout
    assert "and as many to each read replica" in shown.stdout
