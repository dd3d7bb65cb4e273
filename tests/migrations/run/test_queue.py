"""Migrators queue for the lock before loading Alembic; one that finds the work done leaves at once."""

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from atsboost import migrations
from atsboost.migrations.commands import apply
from atsboost.migrations.run.locks import migration_key
from tests.conftest import run_loading, wait_until

HEAD = "7c1f9a2b4d10"


def waiting_for_lock(engine) -> bool:
    """Whether a migrator is in its wait: after LISTEN, it looked up who holds the lock."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'atsboost:migrate' "
        "AND query LIKE 'SELECT pid FROM pg_locks%' AND datname = current_database()"
    )
    with engine.connect() as conn:
        return bool(conn.execute(text(query)).scalar_one())


def test_a_queued_migrator_finds_the_work_done_and_leaves_without_alembic(
    environ, make_settings, make_engine, tmp_path
):
    settings = make_settings()
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")
    key = migration_key()
    holder = observer.connect().execution_options(isolation_level="AUTOCOMMIT")
    assert holder.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one()
    with ThreadPoolExecutor(1) as pool:
        queued = pool.submit(run_loading, ["migrate"], environ, tmp_path)
        assert wait_until(lambda: waiting_for_lock(observer), timeout=30)

        # This session migrates while the other waits: as the first of several deploys would.
        applied = apply(
            settings, revision="heads", dry_run=None, force=None, connection=None, output=None, lock_held=key
        )
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        holder.execute(text("NOTIFY atsboost_migration_lock"))
        holder.close()
        output, code, loaded = queued.result(timeout=60)

    assert [r.id for r in applied.applied] == ["055d037ec299", HEAD]
    assert code == 0 and f"nothing to migrate: the database is at {HEAD}" in output
    assert loaded == []


def test_eight_concurrent_upgrades_apply_each_revision_once(make_settings, make_engine):
    settings = make_settings()
    barrier = threading.Barrier(8)

    def deploy(_: int) -> int:
        barrier.wait()
        return len(migrations.upgrade(settings).applied)

    with ThreadPoolExecutor(8) as pool:
        counts = sorted(pool.map(deploy, range(8)))

    assert counts == [0] * 7 + [2]  # one applied both; the others found the database at head
    with make_engine().connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
