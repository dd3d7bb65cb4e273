"""No secret is ever printed: planted in every place a URL can hold one, and in the admin's password.

Every command and failure path runs, and everything a user could see (stdout,
stderr with the log lines, --debug tracebacks, reprs) is searched for them and
for the admin's password hash.
"""

import pytest
from sqlalchemy import text

from atsboost.config.settings import load_settings
from atsboost.runtime.engine import create_engine

ADMIN = "Adm1n-correct-horse-battery-planted"
PLACES = {
    "user-info": ("UserInf0-s3cret-planted", lambda url, s: url.set(password=s)),
    "password=": ("Qu3ry-s3cret-planted", lambda url, s: url.update_query_dict({"password": s})),
    "sslpassword=": ("SslK3y-s3cret-planted", lambda url, s: url.update_query_dict({"sslpassword": s})),
}
RUNS = [
    ["config"],
    ["config", "--json"],
    ["config", "--connect"],
    ["config", "--connect", "--json"],
    ["migrate", "--dry-run"],
    ["migrate"],
    ["migrate", "status", "--json"],
    ["seed", "--json"],
    ["init"],
    ["health"],
    ["health", "--json"],
    ["roles"],
    ["roles", "--apply", "--json"],
    ["--debug", "migrate", "downgrade", "nosuchrevision"],
    ["--debug", "migrate", "create", "x"],
    ["--debug", "seed", "--plans", "/nonexistent.toml"],
]


@pytest.mark.parametrize("place", PLACES)
def test_planted_secrets_appear_in_no_output(
    place, invoke, database_url, unused_tcp_port, make_engine, role_settings
):
    secret, plant = PLACES[place]
    url = plant(database_url, secret).render_as_string(hide_password=False)
    env = {"ATSBOOST_ENV": "production", "DATABASE_DISABLE_SSL": "true", "MIGRATION_FORCE": "true"}
    env |= {"DATABASE_URL": url, "ADMIN_INITIAL_PASSWORD": ADMIN, **role_settings}
    seen = [invoke(*args, env=env) for args in RUNS]
    assert [r.returncode for r in seen[:13]] == [0] * 13, [r.stderr for r in seen[:13]]
    down = plant(database_url.set(host="127.0.0.1", port=unused_tcp_port, query={}), secret)
    env["DATABASE_URL"] = down.render_as_string(hide_password=False)
    seen += [invoke("--debug", "config", "--connect", env=env), invoke("migrate", env=env)]
    assert seen[-1].returncode == 1 and "cannot connect to" in seen[-1].stderr
    settings = load_settings(env)
    engine = create_engine(settings)
    printed = "".join(r.stdout + r.stderr for r in seen) + repr(settings) + repr(engine) + str(engine.url)
    engine.dispose()
    with make_engine().connect() as conn:
        password_hash = conn.execute(text("SELECT password_hash FROM users")).scalar_one()
    for planted in (secret, ADMIN, password_hash):
        assert planted not in printed
