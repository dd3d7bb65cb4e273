import inspect
import logging
import time

import sqlalchemy

from atsboost.config.settings import load_settings


def test_a_leaked_connection_is_reported_once_with_where_it_was_taken(make_engine, caplog):
    engine = make_engine(DATABASE_LEAK_THRESHOLD="0.5")
    with caplog.at_level(logging.WARNING, logger="atsboost.runtime.leaks"):
        line = inspect.stack()[0].lineno + 1  # the next line takes the connection
        leaked = engine.connect()
        time.sleep(1.6)
        leaked.close()
        time.sleep(0.3)
    reports = [r.getMessage() for r in caplog.records if r.name == "atsboost.runtime.leaks"]
    assert len(reports) == 1
    assert reports[0].startswith("a database connection has been checked out for ")
    assert "(DATABASE_LEAK_THRESHOLD=0.5s) and not returned" in reports[0]
    assert f"it was taken at {__file__}:{line} in test_a_leaked_connection" in reports[0]


def keep_a_connection(engine, kept):
    kept.append(engine.connect())  # the leak: this function returns, the connection stays out
    return inspect.stack()[0].lineno - 1


def test_a_leak_from_a_function_that_returned_names_the_line_inside_it(make_engine, caplog):
    engine = make_engine(DATABASE_LEAK_THRESHOLD="0.5")
    kept: list[sqlalchemy.Connection] = []
    with caplog.at_level(logging.WARNING, logger="atsboost.runtime.leaks"):
        line = keep_a_connection(engine, kept)
        time.sleep(1.6)
        kept[0].close()
    reports = [r.getMessage() for r in caplog.records if r.name == "atsboost.runtime.leaks"]
    assert len(reports) == 1
    assert f"it was taken at {__file__}:{line} in keep_a_connection" in reports[0]
    assert "test_a_leak_from_a_function_that_returned" in reports[0]  # the caller, in the full stack


def test_connections_returned_in_time_are_not_reported(make_engine, caplog):
    engine = make_engine(DATABASE_LEAK_THRESHOLD="0.5")
    with caplog.at_level(logging.WARNING, logger="atsboost.runtime.leaks"):
        for _ in range(5):
            with engine.connect():
                time.sleep(0.2)
        time.sleep(0.6)
    assert [r for r in caplog.records if r.name == "atsboost.runtime.leaks"] == []


def test_leak_detection_defaults():
    url = "postgresql://db/app"
    assert load_settings({"ATSBOOST_ENV": "development"}).runtime.leak_threshold == 60
    assert load_settings({"ATSBOOST_ENV": "testing", "DATABASE_URL": url}).runtime.leak_threshold == 60
    assert load_settings({"ATSBOOST_ENV": "production", "DATABASE_URL": url}).runtime.leak_threshold is None
    production = {"ATSBOOST_ENV": "production", "DATABASE_URL": url, "DATABASE_LEAK_THRESHOLD": "30"}
    assert load_settings(production).runtime.leak_threshold == 30
