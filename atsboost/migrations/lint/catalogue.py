"""The lint's rule catalogue: each rule's id, severity, the lock it takes, and the safe recipe."""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING = "error", "warning"
UNRENDERED = "AB016"  # a revision whose SQL cannot be rendered offline
DYNAMIC = "AB020"  # statements built at run time


@dataclass(frozen=True)
class Rule:
    """One thing the lint looks for."""

    id: str
    severity: str
    lock: str
    problem: str
    recipe: str
    exempt_if_new: bool = True  # a table created in the same revision is not in use yet
    # a table with no row escapes a lock rule; a drop or rename of it still breaks the running code
    exempt_if_empty: bool = True


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
            "column added with a volatile default (a serial, a random or clock value)",
            "add the column without a default, backfill it in batches, then SET DEFAULT",
        ),
        Rule(
            "AB005",
            ERROR,
            "AccessExclusiveLock for a rewrite of the table",
            "column type changed in a way that rewrites the table (int to bigint, a USING expression)",
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
            "FOREIGN KEY or CHECK added and validated at once (inline on a new column too)",
            "add it NOT VALID, then VALIDATE CONSTRAINT in a later step (it takes a weaker lock)",
        ),
        Rule(
            "AB008",
            ERROR,
            "AccessExclusiveLock while the index is built",
            "PRIMARY KEY or UNIQUE added without USING INDEX (inline on a new column too)",
            "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... USING INDEX",
        ),
        Rule(
            "AB009",
            ERROR,
            "AccessExclusiveLock (brief); the old name fails at once in running code",
            "column, table, schema or enum value renamed: the version still running uses the old name",
            "expand and contract: add the new name beside the old one and write both, move the code to "
            "the new name in one deploy, then drop the old one in a later revision",
            exempt_if_empty=False,
        ),
        Rule(
            "AB010",
            ERROR,
            "AccessExclusiveLock (brief); its data is gone, and running code still reads it",
            "column, table or database dropped: the version still running reads it",
            "stop reading it first: remove the attribute from the model (or mark it deferred() and stop "
            "using it), deploy that, then drop it in a later revision",
            exempt_if_empty=False,
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
            "stored generated or identity column added: every row is written anew",
            "add a plain column, backfill it in batches, and keep it current from the code, a trigger or "
            "a sequence default set afterwards",
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
        ),
        Rule(
            "AB017",
            ERROR,
            "AccessExclusiveLock, and the statement fails on a table with rows",
            "NOT NULL column added without a default",
            "add it nullable (or with a constant DEFAULT), backfill it, then add CHECK (col IS NOT NULL) "
            "NOT VALID, VALIDATE it, and SET NOT NULL",
        ),
        Rule(
            "AB018",
            ERROR,
            "AccessExclusiveLock while the exclusion index is built and every row checked",
            "EXCLUDE constraint added to a table in use",
            "there is no concurrent form: add it while the table is new or empty, or waive the rule for "
            "a maintenance window",
        ),
        Rule(
            "AB019",
            ERROR,
            "AccessExclusiveLock for a rewrite or copy of the table",
            "SET LOGGED, SET UNLOGGED, SET TABLESPACE or SET ACCESS METHOD rewrites the table",
            "do it while the table is new, or in a maintenance window with the rule waived",
        ),
        Rule(
            "AB020",
            WARNING,
            "not known: the statements are built at run time",
            "dynamic SQL (EXECUTE in a DO block, or a DO block in another language) cannot be checked",
            "write the statements as plain SQL in the revision, so the lint sees them",
            exempt_if_new=False,
        ),
        Rule(
            "AB021",
            ERROR,
            "AccessExclusiveLock on the partitioned table: blocks reads and writes of every partition",
            "DETACH PARTITION without CONCURRENTLY",
            "DETACH PARTITION ... CONCURRENTLY, in an autocommit_block (PostgreSQL 14+)",
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
SQL_RULES = tuple(rule_id for rule_id in RULES if rule_id not in (UNRENDERED, DYNAMIC))
