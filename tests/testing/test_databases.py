"""The migrated template: built once, reused while the revisions are unchanged, cloned per process."""

import dataclasses
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from atsboost.config.settings import Settings
from atsboost.config.testing import read_test_settings
from atsboost.errors import ConfigurationError, MigrationError
from atsboost.testing import databases
from atsboost.testing.database import open_database
from atsboost.testing.databases import Run
from tests.conftest import add_revision
from tests.testing.test_database import plans

BUILT = "migrating the test database"


@dataclasses.dataclass(frozen=True)
class Project:
    root: Path
    ini: Path
    server: Settings

    @property
    def template(self) -> str:
        return databases.template_name(self.root)

    def open(self, run_id: str, worker: str = "main", *, create: bool = False):
        return open_database(self.server, self.root, Run(run_id, worker, create))

    def oid(self) -> int | None:
        with databases.admin(self.server) as conn:
            row = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", [self.template]).fetchone()
        return None if row is None else int(row[0])

    def databases(self) -> list[str]:
        with databases.admin(self.server) as conn:
            pattern = self.template.replace("_", r"\_") + "%"
            query = "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1"
            return [row[0] for row in conn.execute(query, [pattern])]


@pytest.fixture
def project(alembic_project, pg_server):
    """A project of the test's own (atsboost's revisions, copied), on the suite's server.

    Its template and every clone are dropped afterwards.
    """
    root = alembic_project.parent
    raw = pg_server.url(pg_server.maintenance_dbname).render_as_string(hide_password=False)
    test_settings = read_test_settings({**os.environ, "ATSBOOST_TEST_DATABASE_URL": raw}, root)
    made = Project(root, alembic_project, databases.server_settings(test_settings))
    yield made
    with databases.admin(made.server) as conn:
        for name in made.databases():
            databases.drop(conn, name)


def built(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(BUILT)]


def test_the_template_is_migrated_once_and_reused_by_the_next_run(project, caplog):
    caplog.set_level(logging.INFO, "atsboost.testing")
    first = project.open("run00001")
    assert built(caplog) == [f"{BUILT} {project.template} (there is none yet)"]
    oid = project.oid()
    first.close()
    caplog.clear()
    second = project.open("run00002")
    try:
        assert built(caplog) == []  # the next run starts without migrating
        assert project.oid() == oid
        assert second.name == first.name == f"{project.template}_main_0"  # its copy, kept for it
        with second.engine.connect() as conn:
            at = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
        assert at == "7c1f9a2b4d10"
    finally:
        second.close()
    assert project.databases() == [project.template, first.name]


def test_an_edited_added_or_removed_revision_rebuilds_the_template(project, caplog):
    caplog.set_level(logging.INFO, "atsboost.testing")
    project.open("run00001").close()
    reason = "a revision file changed, was added or was removed since it was migrated"
    [first] = (project.ini.parent / "alembic" / "versions").glob("*055d037ec299*.py")
    first.write_text(first.read_text() + "\n# reviewed\n")
    add_revision(project.ini, "aaaa00000001", "op.execute('CREATE TABLE notes (id int)')", "pass")
    caplog.clear()
    clone = project.open("run00002")
    assert built(caplog) == [f"{BUILT} {project.template} ({reason})"]
    with clone.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT to_regclass('notes') IS NOT NULL").scalar_one()
    clone.close()
    [added] = (project.ini.parent / "alembic" / "versions").glob("*aaaa00000001*.py")
    added.unlink()
    caplog.clear()
    clone = project.open("run00003")
    assert built(caplog) == [f"{BUILT} {project.template} ({reason})"]
    with clone.engine.connect() as conn:
        assert not conn.exec_driver_sql("SELECT to_regclass('notes') IS NOT NULL").scalar_one()
    clone.close()


def test_create_db_rebuilds_once_in_a_run_whatever_its_workers(project, caplog):
    caplog.set_level(logging.INFO, "atsboost.testing")
    project.open("run00001").close()
    caplog.clear()
    workers = [project.open("run00002", "gw0", create=True), project.open("run00002", "gw1", create=True)]
    assert built(caplog) == [f"{BUILT} {project.template} (--atsboost-create-db)"]
    assert [w.name for w in workers] == [f"{project.template}_{w}_0" for w in ("gw0", "gw1")]
    for worker in workers:
        worker.close()
    caplog.clear()
    project.open("run00003").close()
    assert built(caplog) == []


def test_a_second_run_at_once_takes_the_next_slot_and_a_freed_slot_is_taken_again(project):
    first = project.open("run00001")
    second = project.open("run00002")  # the first still holds its slot
    assert (first.name, second.name) == (f"{project.template}_main_0", f"{project.template}_main_1")
    first.close()
    third = project.open("run00003")
    assert third.name == first.name
    second.close()
    third.close()


CRASH = """
import os, sys
from pathlib import Path
from sqlalchemy import text
from atsboost.config.testing import read_test_settings
from atsboost.testing.database import open_database
from atsboost.testing.databases import Run, server_settings

root = Path(sys.argv[1])
database = open_database(server_settings(read_test_settings(os.environ, root)), root, Run("crashed"))
with database.connection(transactional=False) as conn:
    conn.execute(text(
        "INSERT INTO subscription_plans (code, name, price_cents, billing_interval)"
        " VALUES ('x', 'x', 0, 'month')"
    ))
    conn.commit()
    print(database.name, flush=True)
    os._exit(3)  # killed in the middle of the test
"""


def test_a_copy_left_written_to_or_of_an_older_template_is_made_again(project, pg_server):
    raw = pg_server.url(pg_server.maintenance_dbname).render_as_string(hide_password=False)
    env = {**os.environ, "ATSBOOST_TEST_DATABASE_URL": raw}
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH, str(project.root)], env=env, capture_output=True, text=True, timeout=120
    )
    assert crashed.returncode == 3, crashed.stderr
    again = project.open("run00002")
    try:
        assert again.name == crashed.stdout.strip()  # the slot the killed process freed
        with again.engine.connect() as conn:
            assert plans(conn) == []  # not the copy it wrote to: a new one
    finally:
        again.close()
    add_revision(project.ini, "aaaa00000002", "op.execute('CREATE TABLE later (id int)')", "pass")
    newer = project.open("run00003")
    try:
        with newer.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT to_regclass('later') IS NOT NULL").scalar_one()
    finally:
        newer.close()


def test_two_processes_preparing_at_once_migrate_once(project, caplog):
    caplog.set_level(logging.INFO, "atsboost.testing")
    opened, errors = [], []

    def prepare(run_id):
        try:
            opened.append(project.open(run_id))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=prepare, args=(f"run0000{i}",)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert len(built(caplog)) == 1  # the second waited for the first, then cloned its template
    assert sorted(clone.name for clone in opened) == [f"{project.template}_main_{n}" for n in (0, 1)]
    for clone in opened:
        clone.close()


def test_a_failing_revision_fails_preparation_and_the_next_run_builds_again(project, caplog):
    add_revision(project.ini, "bbbb00000001", "op.execute('SELECT * FROM no_such_table')")
    with pytest.raises(MigrationError, match="bbbb00000001"):
        project.open("run00001")
    [bad] = (project.ini.parent / "alembic" / "versions").glob("*bbbb00000001*.py")
    bad.write_text(bad.read_text().replace("SELECT * FROM no_such_table", "SELECT 1"))  # fixed
    caplog.set_level(logging.INFO, "atsboost.testing")
    clone = project.open("run00002")
    assert len(built(caplog)) == 1
    with clone.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one() == "bbbb00000001"
    clone.close()


def test_a_bad_test_server_url_is_refused_in_one_line():
    with pytest.raises(ConfigurationError, match="ATSBOOST_TEST_DATABASE_URL uses the scheme 'mysql'"):
        read_test_settings({"ATSBOOST_TEST_DATABASE_URL": "mysql://u:secret@h/db"}, Path.cwd())


def test_the_application_s_own_urls_never_reach_a_test_database(pg_server, tmp_path):
    raw = pg_server.url(pg_server.maintenance_dbname).render_as_string(hide_password=False)
    environ = {
        "ATSBOOST_TEST_DATABASE_URL": raw,
        "ATSBOOST_ENV": "production",
        "DATABASE_URL": "postgresql://app:secret@prod.example.com/app",
        "DATABASE_MIGRATION_URL": "postgresql://owner:secret@prod.example.com/app",
        "DATABASE_REPLICA_URLS": "postgresql://app:secret@replica.example.com/app",
    }
    server = databases.server_settings(read_test_settings(environ, tmp_path))
    assert server.environment.value == "testing"
    assert server.url is not None and server.url.host != "prod.example.com"
    assert server.migration_url is None and not server.replicas.urls
    assert "secret" not in repr(read_test_settings(environ, tmp_path))


def test_connect_failure_to_the_test_server_is_explained(tmp_path, unused_tcp_port):
    raw = f"postgresql://postgres:secret@127.0.0.1:{unused_tcp_port}/postgres"
    server = databases.server_settings(read_test_settings({"ATSBOOST_TEST_DATABASE_URL": raw}, tmp_path))
    with pytest.raises(Exception) as failure:
        open_database(server, tmp_path, Run("run00001"))
    assert "secret" not in str(failure.value)
    assert not isinstance(failure.value, psycopg.Error)  # atsboost's explained error, not the driver's
