"""The report over a direct connection (the command's) and over an engine's (an application's)."""

from atsboost import migrations
from atsboost.health import report, report_for
from atsboost.health.model import HealthReport
from tests.conftest import run_loading


def failed_sections(found: HealthReport) -> list[str]:
    """The notes of sections that could not be read (pg_stat_statements' absence is not one)."""
    return [note for note in found.notes if not note.startswith("slow query statistics")]


def test_a_direct_connection_reports_what_an_engine_does(make_settings, make_engine):
    settings = make_settings()
    migrations.upgrade(settings)
    direct = report_for(settings, migration_status=migrations.status(settings))
    pooled = report(make_engine(), migration_status=migrations.status(settings))

    assert direct.connection.reachable and not failed_sections(direct)
    assert direct.notes == pooled.notes
    assert direct.database == pooled.database == settings.masked_url
    assert direct.largest_tables == pooled.largest_tables
    assert direct.connection.revision == pooled.connection.revision == ["7c1f9a2b4d10"]
    assert direct.usage is not None and pooled.usage is not None
    assert direct.usage.pool_capacity is None  # no pool of its own
    assert pooled.usage.pool_capacity == settings.pool.size + settings.pool.max_overflow


def test_an_engine_in_transaction_pool_mode_with_a_statement_timeout(make_settings, make_engine):
    migrations.upgrade(make_settings())
    engine = make_engine(DATABASE_POOL_MODE="transaction", DATABASE_STATEMENT_TIMEOUT="5000")

    found = report(engine)

    assert found.connection.reachable and not failed_sections(found), found.notes
    assert found.connection.revision == ["7c1f9a2b4d10"]


def test_without_the_version_table_the_revision_is_empty(make_settings):
    found = report_for(make_settings())
    assert found.connection.reachable and found.connection.revision == []


def test_health_loads_neither_alembic_nor_sqlalchemy(invoke, environ, tmp_path):
    assert invoke("migrate", env=environ).returncode == 0
    output, code, loaded = run_loading(["health", "--json"], environ, tmp_path)
    assert '"pending_revisions": 0' in output and code == 0
    assert loaded == []


def test_behind_a_transaction_pooler_the_direct_report_keeps_to_one_transaction(make_settings):
    settings = make_settings(DATABASE_POOL_MODE="transaction")
    migrations.upgrade(make_settings())

    found = report_for(settings)

    assert found.connection.reachable and not failed_sections(found), found.notes
    assert found.connection.revision == ["7c1f9a2b4d10"]
