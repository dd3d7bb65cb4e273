"""The Flask extension in-process, on the plugin's test transaction; tests/test_docs_recipes.py runs it
under gunicorn with 4 workers from the wheel, with faults."""

import pytest
from flask import Flask
from sqlalchemy import text

from atsboost import db
from atsboost.integrations.flask import Atsboost

INSERT = text(
    "INSERT INTO subscription_plans (code, name, price_cents, billing_interval) VALUES (:c, :c, 0, 'month')"
)


def make_app(database: Atsboost, **config) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    database.init_app(app)
    app.register_blueprint(database.health_blueprint())
    seen = []

    @app.post("/plans/<code>")
    def create(code):
        database.session.execute(INSERT, {"c": code})
        seen.append(database.session)
        if code != "uncommitted":
            database.commit()
        return {"code": code}, 201

    @app.put("/plans/<code>")
    def put(code):
        database.run_transaction(lambda session: session.execute(INSERT, {"c": code}))
        return {"code": code}

    app.config["seen"] = seen
    return app


def codes(session) -> list[str]:
    return list(session.execute(text("SELECT code FROM subscription_plans ORDER BY code")).scalars())


def test_each_request_has_its_session_closed_at_teardown_and_uncommitted_work_rolled_back(db_session):
    database = Atsboost()
    app = make_app(database)
    client = app.test_client()
    assert client.post("/plans/a").status_code == 201
    assert client.post("/plans/uncommitted").status_code == 201
    assert client.put("/plans/b").status_code == 200
    first, second = app.config["seen"]
    assert first is not second  # a session per application context
    assert not first.in_transaction() and not second.in_transaction()  # closed when the request ended
    assert codes(db_session) == ["a", "b"]  # the uncommitted insert was rolled back at teardown


def test_the_health_routes(db_session):
    client = make_app(Atsboost()).test_client()
    assert client.get("/healthz").json == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json is not None and ready.json["status"] == "healthy"


def test_init_app_starts_the_database_and_settings_from_the_config_give_a_database_of_its_own(
    make_settings, make_engine
):
    settings = make_settings()
    database = Atsboost()
    client = make_app(database, ATSBOOST_SETTINGS=settings).test_client()
    try:
        assert database.database is not db.default and database.database.settings is settings
        with make_engine().connect() as conn:  # init_app's startup() migrated the database
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        assert client.post("/plans/own").status_code == 201
        with make_engine().connect() as conn:
            assert codes(conn) == ["own"]
    finally:
        database.database.shutdown()


def test_startup_can_be_left_to_a_deploy_step(make_settings, make_engine):
    database = Atsboost(startup=False)
    make_app(database, ATSBOOST_SETTINGS=make_settings())
    with make_engine().connect() as conn:
        assert conn.execute(text("SELECT to_regclass('alembic_version') IS NULL")).scalar_one()
    database.database.dispose()


@pytest.mark.parametrize("flag", [True, False])
def test_the_app_s_config_decides_startup(flag, make_settings, make_engine):
    database = Atsboost(startup=not flag)
    make_app(database, ATSBOOST_SETTINGS=make_settings(), ATSBOOST_STARTUP=flag)
    with make_engine().connect() as conn:
        migrated = conn.execute(text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar_one()
    database.database.dispose()
    assert migrated is flag


def test_the_metrics_route_serves_atsboost_s_figures(db_session):
    app = make_app(Atsboost())
    app.register_blueprint(Atsboost().metrics_blueprint())
    client = app.test_client()
    assert client.put("/plans/counted").status_code == 200
    scraped = client.get("/metrics")
    assert scraped.status_code == 200 and scraped.content_type.startswith("text/plain")
    assert "# TYPE atsboost_transactions_total counter" in scraped.text
