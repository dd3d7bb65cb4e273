"""The lint's rule catalogue: each rule's id, severity, the lock it takes, and the safe recipe."""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING = "error", "warning"
UNRENDERED = "AB016"  # a revision whose SQL cannot be rendered offline


@dataclass(frozen=True)
class Rule:
    """One thing the lint looks for."""

    id: str
    severity: str
    lock: str
    problem: str
    recipe: str
    exempt_if_new: bool = True  # a table created in the same revision is not in use yet


RULES = {
    rule.id: rule
    for rule in (
        Rule(
            "AB001",
            ERROR,
            "ShareLock: blocks writes for the whole build",
            "CREATE INDEX without CONCURRENTLY",
            "build it with atsboost.migrations.ops.create_index_concurrently (CREATE INDEX CONCURRENTLY)",
        ),
        Rule(
            "AB002",
            ERROR,
            "none: the statement fails",
            "CONCURRENTLY inside a transaction",
            "run it in op.get_context().autocommit_block(), as the ops helpers do",
            exempt_if_new=False,
        ),
        Rule(
            "AB003",
            ERROR,
            "AccessExclusiveLock: blocks reads and writes",
            "DROP INDEX without CONCURRENTLY",
            "use atsboost.migrations.ops.drop_index_concurrently (DROP INDEX CONCURRENTLY)",
        ),
        Rule(
            "AB004",
            ERROR,
            "AccessExclusiveLock for a rewrite of the table",
            "column added with a volatile default",
            "add the column without a default, backfill it in batches, then SET DEFAULT",
        ),
        Rule(
            "AB005",
            ERROR,
            "AccessExclusiveLock, and most type changes rewrite the table",
            "column type changed (int to bigint and the like rewrite the table)",
            "add a new column, backfill it in batches, switch the code to it, then drop the old one",
        ),
        Rule(
            "AB006",
            ERROR,
            "AccessExclusiveLock while every row is scanned",
            "SET NOT NULL",
            "ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, then SET NOT NULL",
        ),
        Rule(
            "AB007",
            ERROR,
            "ShareRowExclusiveLock while every row is checked",
            "FOREIGN KEY or CHECK added and validated at once",
            "add it NOT VALID, then VALIDATE CONSTRAINT in a later step (it takes a weaker lock)",
        ),
        Rule(
            "AB008",
            ERROR,
            "AccessExclusiveLock while the index is built",
            "PRIMARY KEY or UNIQUE added without USING INDEX",
            "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... USING INDEX",
        ),
        Rule(
            "AB009",
            WARNING,
            "AccessExclusiveLock (brief)",
            "column or table renamed: running code still uses the old name",
            "add the new name beside the old (expand), move the code, then remove the old (contract)",
            exempt_if_new=False,
        ),
        Rule(
            "AB010",
            WARNING,
            "AccessExclusiveLock (brief)",
            "column or table dropped: its data is gone",
            "stop using it in the code first, deploy, then drop it in a later release",
            exempt_if_new=False,
        ),
        Rule(
            "AB011",
            ERROR,
            "RowExclusiveLock on every row, in one long transaction",
            "UPDATE or DELETE of a whole table",
            "backfill in batches that commit one by one, outside the schema change",
        ),
        Rule(
            "AB012",
            ERROR,
            "AccessExclusiveLock for a rewrite of the table",
            "stored generated column added",
            "add a plain column, backfill it in batches, and keep it current from the code or a trigger",
        ),
        Rule(
            "AB013",
            ERROR,
            "AccessExclusiveLock for a rewrite of the table",
            "VACUUM FULL, CLUSTER or REINDEX without CONCURRENTLY",
            "use REINDEX CONCURRENTLY, or pg_repack for a rewrite; never in a migration",
            exempt_if_new=False,
        ),
        Rule(
            "AB014",
            WARNING,
            "none, but the new value is unusable until COMMIT",
            "ALTER TYPE ... ADD VALUE inside a transaction",
            "add enum values in an autocommit_block, in a revision of their own",
            exempt_if_new=False,
        ),
        Rule(
            "AB015",
            ERROR,
            "AccessExclusiveLock, and every row is gone",
            "TRUNCATE",
            "delete in batches, or keep the data: a migration should not empty a table",
            exempt_if_new=False,
        ),
        Rule(
            UNRENDERED,
            WARNING,
            "not known: its statements were not seen",
            "SQL cannot be rendered offline, so the lock rules were not checked",
            "review the revision by hand, or run `atsboost-db migrate lint --trace` on a staging copy",
            exempt_if_new=False,
        ),
    )
}
# The rules that read a revision's statements: those a revision that cannot be rendered escapes.
SQL_RULES = tuple(rule_id for rule_id in RULES if rule_id != UNRENDERED)
