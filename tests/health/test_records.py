"""The report's typed records name the fields docs/health.schema.json requires, section by section."""

import typing

from atsboost.health import records
from atsboost.health.model import HealthReport
from tests.health.test_collect import SCHEMA

SECTIONS = {
    "largest_tables": records.TableSize,
    "tables": records.TableStats,
    "long_queries": records.LongQuery,
    "blocking": records.Blocking,
    "invalid_indexes": records.InvalidIndex,
    "unused_indexes": records.UnusedIndex,
    "duplicate_indexes": records.DuplicateIndex,
    "sequences": records.SequenceUse,
    "statements": records.StatementStats,
    "hosts": records.Host,
}


def fields(record):
    """Each field of a TypedDict and whether it may be None."""
    hints = typing.get_type_hints(record)
    return {name: type(None) in typing.get_args(hint) for name, hint in hints.items()}


def schema_fields(item):
    """Each property of a schema object and whether it may be null."""
    definitions = SCHEMA["$defs"]

    def nullable(spec):
        spec = definitions[spec["$ref"].rsplit("/", 1)[1]] if "$ref" in spec else spec
        kinds = spec.get("type", [])
        return "null" in (kinds if isinstance(kinds, list) else [kinds])

    assert set(item["required"]) == set(item["properties"])  # every field is always there
    return {name: nullable(spec) for name, spec in item["properties"].items()}


def test_each_section_s_record_is_the_schema_s_row():
    for section, record in SECTIONS.items():
        assert fields(record) == schema_fields(SCHEMA["properties"][section]["items"]), section


def test_the_replication_records_are_the_schema_s():
    replication = SCHEMA["properties"]["replication"]
    assert fields(records.Standby) == schema_fields(replication["properties"]["standbys"]["items"])
    assert fields(records.Slot) == schema_fields(replication["properties"]["slots"]["items"])
    assert set(typing.get_type_hints(records.Replication)) == set(replication["required"])


def test_the_report_types_every_section_with_its_record():
    hints = typing.get_type_hints(HealthReport)
    for section, record in SECTIONS.items():
        hint = hints[section]
        listed = typing.get_args(hint)[0] if typing.get_origin(hint) is not list else hint  # X | None
        assert typing.get_args(listed) == (record,), section


def test_the_role_records_are_the_schema_s():
    role = SCHEMA["properties"]["role"]
    assert fields(records.Role) == schema_fields(role)
    assert fields(records.PrivilegeGap) == schema_fields(role["properties"]["missing"]["items"])
    assert typing.get_args(typing.get_type_hints(HealthReport)["role"]) == (records.Role, type(None))
