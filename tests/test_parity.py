"""The sync and asyncio facades stay in step: the same names, methods and parameters, bar the listed ones."""

import inspect

import pytest
from mypy import api as mypy_api

from atsboost import aio, db

pytestmark = pytest.mark.one_server  # no server at all

# Each sync name and its asyncio twin where the names differ.
TWINS = {"Database": "AsyncDatabase", "create_engine": "create_async_engine"}
# Intended differences, with their reason.
SYNC_ONLY = {
    "after_fork",  # a forked worker (gunicorn's post_fork); an event loop is not forked with live tasks
}
ASYNC_ONLY = {
    "AsyncEngine",  # re-exported from SQLAlchemy's asyncio extension, which sync code never imports
    "AsyncSession",
}
SYNC_ONLY_PARAMETERS = {
    ("startup", "handle_signals"),  # an asyncio server (uvicorn) owns SIGTERM and awaits shutdown()
    ("shutdown", "at_exit"),  # the atexit hook: at interpreter exit no event loop runs to await it
}


def test_the_facades_export_the_same_names():
    assert {TWINS.get(name, name) for name in set(db.__all__) - SYNC_ONLY} == set(aio.__all__) - ASYNC_ONLY


def parameters(fn, method):
    """Every parameter but ``self`` and those listed as sync-only: name, kind and default."""
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(fn).parameters.values()
        if p.name != "self" and (method, p.name) not in SYNC_ONLY_PARAMETERS
    ]


def test_the_facade_functions_take_the_same_parameters():
    for name in set(db.__all__) - SYNC_ONLY - set(TWINS):
        sync, asynchronous = getattr(db, name), getattr(aio, name)
        if inspect.isfunction(sync):
            assert parameters(sync, name) == parameters(asynchronous, name), name
            assert inspect.iscoroutinefunction(asynchronous) or name in {
                "get_engine",
                "transaction",
                "session_scope",
            }


def public_methods(cls):
    return {name for name, _ in inspect.getmembers(cls, callable) if not name.startswith("_")}


def test_database_and_async_database_have_the_same_methods_and_parameters():
    sync, asynchronous = db.Database, aio.AsyncDatabase
    assert public_methods(sync) - SYNC_ONLY == public_methods(asynchronous)
    for name in public_methods(asynchronous):
        assert parameters(getattr(sync, name), name) == parameters(getattr(asynchronous, name), name), name
    assert parameters(sync.__init__, "__init__") == parameters(asynchronous.__init__, "__init__")


def test_a_misspelt_transaction_option_is_a_type_error_before_it_runs(tmp_path):
    program = tmp_path / "app.py"
    program.write_text(
        "from atsboost import aio, db\n"
        "db.run_transaction(lambda s: 1, read_olny=True)\n"
        "async def f() -> None:\n"
        "    await aio.run_transaction(lambda s: g(), idempotnet=True)\n"
        "async def g() -> int:\n"
        "    return 1\n"
    )
    report, _, status = mypy_api.run(["--strict", "--cache-dir", str(tmp_path / "cache"), str(program)])
    assert status == 1
    assert 'Unexpected keyword argument "read_olny" for "run_transaction"' in report
    assert 'Unexpected keyword argument "idempotnet" for "run_transaction"' in report
