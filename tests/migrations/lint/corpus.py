"""The lint's corpus: every rule's dangerous forms and the safe forms beside them, as Alembic revisions.

Each case is the body of one revision's ``upgrade()`` on top of atsboost's schema
and ``SETUP`` (users, subscriptions and subscription_plans exist, with rows in a
real run). Dangerous cases name the rules they must break, safe ones none. The
forms come from squawk's rule documentation, strong_migrations' README and
PostgreSQL's ALTER TABLE reference; ``scripts/lint_corpus.py`` runs squawk over
the same SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

# Columns and objects the cases change, added by a revision before each case.
SETUP = """
op.execute("ALTER TABLE subscription_plans ADD COLUMN amount numeric(10,2)")
op.execute("ALTER TABLE users ADD COLUMN score real, ADD COLUMN ratio float8, ADD COLUMN ip cidr")
op.execute("ALTER TABLE users ADD COLUMN seen timestamp(3), ADD COLUMN note varchar(40)")
op.execute("CREATE TABLE events (id bigint, at date NOT NULL) PARTITION BY RANGE (at)")
op.execute("CREATE TABLE events_2020 PARTITION OF events FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')")
op.execute("CREATE TYPE mood AS ENUM ('sad', 'ok')")
"""
HELPERS = "from atsboost.migrations.ops import create_index_concurrently, drop_index_concurrently\n"
AUTOCOMMIT = "with op.get_context().autocommit_block():\n    "


@dataclass(frozen=True)
class Case:
    """One revision of the corpus: its upgrade() body, and the rules it must break (none: safe)."""

    name: str
    body: str
    rules: frozenset[str] = frozenset()
    of: str = ""  # a safe case: the rule whose safe form it is


def sql(*statements: str) -> str:
    """Return a revision body that runs ``statements`` with op.execute, in order."""
    return "\n".join(f"op.execute({statement!r})" for statement in statements)


def dangerous(rules: str, name: str, body: str) -> Case:
    """Return a case that must break each of ``rules`` (space separated) and nothing else."""
    return Case(name, body, frozenset(rules.split()))


def safe(rule: str, name: str, body: str) -> Case:
    """Return a case that must break no rule: the safe form of ``rule``."""
    return Case(name, body, of=rule)


USERS_FK = (
    "ALTER TABLE subscriptions ADD CONSTRAINT fk_x FOREIGN KEY (plan_id) REFERENCES subscription_plans (id)"
)
PERIOD = "tstzrange(current_period_start, current_period_end) WITH &&"

DANGEROUS = [
    dangerous("AB001", "index", sql("CREATE INDEX ix_t ON users (email)")),
    dangerous("AB001", "unique index", sql("CREATE UNIQUE INDEX ux_t ON subscription_plans (name)")),
    dangerous("AB001", "gin index", sql("CREATE INDEX ix_t ON subscription_plans USING gin (features)")),
    dangerous("AB001", "op.create_index", 'op.create_index("ix_t", "subscriptions", ["status"])'),
    dangerous("AB001", "index in a DO block", sql("DO $$ BEGIN CREATE INDEX ix_t ON users (role); END $$")),
    dangerous(
        "AB002", "concurrent index in a transaction", sql("CREATE INDEX CONCURRENTLY ix_t ON users (email)")
    ),
    dangerous("AB002", "concurrent drop in a transaction", sql("DROP INDEX CONCURRENTLY ix_users_login")),
    dangerous("AB003", "drop index", sql("DROP INDEX ix_users_login")),
    dangerous("AB003", "drop index if exists", sql("DROP INDEX IF EXISTS ix_subscriptions_user_status")),
    dangerous(
        "AB003", "op.drop_index", 'op.drop_index("ix_subscriptions_plan_id", table_name="subscriptions")'
    ),
    dangerous(
        "AB004", "uuid default", sql("ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid()")
    ),
    dangerous(
        "AB004", "clock default", sql("ALTER TABLE users ADD COLUMN t timestamptz DEFAULT clock_timestamp()")
    ),
    dangerous("AB004", "random default", sql("ALTER TABLE users ADD COLUMN r float8 DEFAULT random()")),
    dangerous("AB004", "serial column", sql("ALTER TABLE subscriptions ADD COLUMN n serial")),
    dangerous(
        "AB004 AB008", "bigserial unique", sql("ALTER TABLE subscriptions ADD COLUMN n bigserial UNIQUE")
    ),
    dangerous(
        "AB004",
        "op.add_column with a volatile default",
        'op.add_column("users", sa.Column("token", sa.Uuid(), server_default=sa.text("gen_random_uuid()")))',
    ),
    dangerous(
        "AB005", "int to bigint", sql("ALTER TABLE subscription_plans ALTER COLUMN price_cents TYPE bigint")
    ),
    dangerous("AB005", "varchar narrowed", sql("ALTER TABLE users ALTER COLUMN email TYPE varchar(100)")),
    dangerous(
        "AB005", "timestamptz to timestamp", 'op.alter_column("users", "last_login_at", type_=sa.DateTime())'
    ),
    dangerous(
        "AB005",
        "USING an expression",
        sql("ALTER TABLE subscriptions ALTER status TYPE int USING length(status)"),
    ),
    dangerous(
        "AB005", "int to numeric", sql("ALTER TABLE subscription_plans ALTER price_cents TYPE numeric(12,2)")
    ),
    dangerous(
        "AB005", "varchar to char", sql("ALTER TABLE subscription_plans ALTER COLUMN code TYPE char(64)")
    ),
    dangerous(
        "AB005", "int to text", sql("ALTER TABLE subscription_plans ALTER COLUMN sort_order TYPE text")
    ),
    dangerous(
        "AB005",
        "numeric scale changed",
        sql("ALTER TABLE subscription_plans ALTER amount TYPE numeric(12,3)"),
    ),
    dangerous("AB005", "real to double", sql("ALTER TABLE users ALTER COLUMN score TYPE double precision")),
    dangerous(
        "AB005", "timestamp to timestamptz", sql("ALTER TABLE users ALTER COLUMN seen TYPE timestamptz")
    ),
    dangerous(
        "AB005",
        "type change in a DO block",
        sql("DO $$ BEGIN ALTER TABLE subscription_plans ALTER price_cents TYPE bigint; END $$"),
    ),
    dangerous("AB006", "set not null", sql("ALTER TABLE users ALTER COLUMN last_login_at SET NOT NULL")),
    dangerous("AB006", "op.alter_column nullable", 'op.alter_column("users", "note", nullable=False)'),
    dangerous("AB007", "foreign key", sql(USERS_FK)),
    dangerous(
        "AB007",
        "op.create_foreign_key",
        'op.create_foreign_key("fk_x", "subscriptions", "subscription_plans", ["plan_id"], ["id"])',
    ),
    dangerous(
        "AB007",
        "check",
        sql("ALTER TABLE subscription_plans ADD CONSTRAINT ck CHECK (price_cents < 10000000)"),
    ),
    dangerous(
        "AB007",
        "op.create_check_constraint",
        'op.create_check_constraint("ck_x", "subscription_plans", "price_cents < 10000000")',
    ),
    dangerous(
        "AB007",
        "inline references",
        sql("ALTER TABLE subscriptions ADD COLUMN owner_id bigint REFERENCES users (id)"),
    ),
    dangerous(
        "AB007",
        "inline check",
        sql("ALTER TABLE subscriptions ADD COLUMN discount int CHECK (discount >= 0)"),
    ),
    dangerous(
        "AB007",
        "op.add_column with a foreign key",
        'op.add_column("subscriptions", sa.Column("owner_id", sa.BigInteger(), sa.ForeignKey("users.id")))',
    ),
    dangerous(
        "AB007",
        "validated in the transaction that added it",
        sql(
            "ALTER TABLE users ADD CONSTRAINT ck_seen CHECK (last_login_at IS NOT NULL) NOT VALID",
            "ALTER TABLE users VALIDATE CONSTRAINT ck_seen",
        ),
    ),
    dangerous("AB008", "unique constraint", sql("ALTER TABLE users ADD CONSTRAINT uq_x UNIQUE (email)")),
    dangerous(
        "AB008",
        "op.create_unique_constraint",
        'op.create_unique_constraint("uq_x", "subscription_plans", ["name"])',
    ),
    dangerous("AB008", "inline unique", sql("ALTER TABLE users ADD COLUMN ext_id uuid UNIQUE")),
    dangerous("AB008", "primary key", sql("ALTER TABLE events_2020 ADD PRIMARY KEY (id, at)")),
    dangerous("AB009", "rename column", sql("ALTER TABLE users RENAME COLUMN role TO kind")),
    dangerous("AB009", "rename table", sql("ALTER TABLE users RENAME TO accounts")),
    dangerous(
        "AB009", "op.alter_column new name", 'op.alter_column("users", "role", new_column_name="kind")'
    ),
    dangerous("AB009", "op.rename_table", 'op.rename_table("subscriptions", "memberships")'),
    dangerous("AB009", "rename enum value", sql("ALTER TYPE mood RENAME VALUE 'ok' TO 'fine'")),
    dangerous("AB009", "rename schema", sql("ALTER SCHEMA public RENAME TO app")),
    dangerous("AB010", "drop column", sql("ALTER TABLE users DROP COLUMN last_login_at")),
    dangerous("AB010", "op.drop_column", 'op.drop_column("users", "is_active")'),
    dangerous("AB010", "drop table", sql("DROP TABLE subscriptions")),
    dangerous("AB010", "op.drop_table", 'op.drop_table("subscriptions")'),
    dangerous("AB010", "drop database", sql("DROP DATABASE legacy")),
    dangerous("AB011", "update every row", sql("UPDATE users SET role = 'user'")),
    dangerous("AB011", "delete every row", sql("DELETE FROM subscriptions")),
    dangerous(
        "AB011",
        "update joined to every row",
        sql(
            "UPDATE subscriptions SET status = 'active' FROM subscription_plans p "
            "WHERE subscriptions.plan_id = p.id"
        ),
    ),
    dangerous(
        "AB011", "update from without where", sql("UPDATE subscriptions SET status = 'active' FROM users")
    ),
    dangerous(
        "AB011",
        "delete using a join",
        sql("DELETE FROM subscriptions USING users WHERE subscriptions.user_id = users.id"),
    ),
    dangerous(
        "AB012",
        "stored generated",
        sql("ALTER TABLE users ADD COLUMN lc text GENERATED ALWAYS AS (lower(email)) STORED"),
    ),
    dangerous(
        "AB012",
        "identity always",
        sql("ALTER TABLE subscriptions ADD COLUMN n int GENERATED ALWAYS AS IDENTITY"),
    ),
    dangerous(
        "AB012",
        "identity by default",
        sql("ALTER TABLE subscriptions ADD COLUMN n bigint GENERATED BY DEFAULT AS IDENTITY"),
    ),
    dangerous("AB013", "vacuum full", sql("VACUUM FULL users")),
    dangerous("AB013", "cluster", sql("CLUSTER users USING pk_users")),
    dangerous("AB013", "reindex table", sql("REINDEX TABLE users")),
    dangerous("AB013", "reindex index", sql("REINDEX INDEX ix_users_login")),
    dangerous("AB014", "enum value in a transaction", sql("ALTER TYPE mood ADD VALUE 'calm'")),
    dangerous("AB015", "truncate", sql("TRUNCATE subscriptions")),
    dangerous("AB015", "truncate cascade", sql("TRUNCATE users CASCADE")),
    dangerous(
        "AB017", "not null without default", sql("ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL")
    ),
    dangerous(
        "AB017",
        "op.add_column not nullable",
        'op.add_column("users", sa.Column("tenant", sa.BigInteger(), nullable=False))',
    ),
    dangerous(
        "AB018",
        "exclusion constraint",
        sql(f"ALTER TABLE subscriptions ADD CONSTRAINT ex EXCLUDE USING gist ({PERIOD})"),
    ),
    dangerous("AB019", "set unlogged", sql("ALTER TABLE users SET UNLOGGED")),
    dangerous("AB019", "set logged", sql("ALTER TABLE subscriptions SET LOGGED")),
    dangerous(
        "AB020",
        "execute in a DO block",
        sql("DO $$ BEGIN EXECUTE 'ALTER TABLE users ADD COLUMN n int'; END $$"),
    ),
    dangerous("AB020", "DO in another language", sql("DO LANGUAGE plperl $$ print 1 $$")),
    dangerous("AB021", "detach partition", sql("ALTER TABLE events DETACH PARTITION events_2020")),
    dangerous(
        "AB016",
        "reads the database",
        'n = op.get_bind().exec_driver_sql("SELECT count(*) FROM users").scalar()\n'
        "op.execute(f\"COMMENT ON TABLE users IS 'had {n} rows'\")",
    ),
]

SAFE = [
    safe("AB002", "concurrent index", HELPERS + 'create_index_concurrently("ix_t", "users", ["email"])'),
    safe("AB003", "concurrent drop", HELPERS + 'drop_index_concurrently("ix_users_login", "users")'),
    safe(
        "AB001",
        "op.create_index concurrently",
        AUTOCOMMIT + 'op.create_index("ix_t", "users", ["role"], postgresql_concurrently=True)',
    ),
    safe("AB004", "nullable column", sql("ALTER TABLE users ADD COLUMN token uuid")),
    safe(
        "AB017", "constant default", sql("ALTER TABLE users ADD COLUMN flag boolean NOT NULL DEFAULT false")
    ),
    safe("AB004", "stable default", sql("ALTER TABLE users ADD COLUMN t timestamptz DEFAULT now()")),
    safe(
        "AB012",
        "op.add_column nullable",
        'op.add_column("users", sa.Column("nick", sa.Text(), nullable=True))',
    ),
    safe("AB005", "varchar to text", sql("ALTER TABLE users ALTER COLUMN email TYPE text")),
    safe("AB005", "varchar widened", sql("ALTER TABLE users ALTER COLUMN email TYPE varchar(500)")),
    safe(
        "AB005", "varchar limit removed", sql("ALTER TABLE subscription_plans ALTER COLUMN code TYPE varchar")
    ),
    safe("AB005", "type to itself", sql("ALTER TABLE users ALTER COLUMN role TYPE varchar(16)")),
    safe(
        "AB005",
        "op.alter_column widened",
        'op.alter_column("users", "role", type_=sa.String(64), existing_type=sa.String(16))',
    ),
    safe(
        "AB005",
        "USING the column as it is",
        sql("ALTER TABLE users ALTER COLUMN email TYPE text USING email::text"),
    ),
    safe(
        "AB005",
        "numeric precision grown",
        sql("ALTER TABLE subscription_plans ALTER amount TYPE numeric(14,2)"),
    ),
    safe(
        "AB005",
        "numeric limit removed",
        sql("ALTER TABLE subscription_plans ALTER COLUMN amount TYPE numeric"),
    ),
    safe("AB005", "FLOAT to FLOAT(53)", sql("ALTER TABLE users ALTER COLUMN ratio TYPE FLOAT(53)")),
    safe("AB005", "cidr to inet", sql("ALTER TABLE users ALTER COLUMN ip TYPE inet")),
    safe("AB005", "timestamp precision grown", sql("ALTER TABLE users ALTER COLUMN seen TYPE timestamp(6)")),
    safe("AB006", "already not null", sql("ALTER TABLE users ALTER COLUMN email SET NOT NULL")),
    safe("AB006", "op.alter_column already not null", 'op.alter_column("users", "role", nullable=False)'),
    safe(
        "AB006",
        "not null through a check validated later",
        sql("ALTER TABLE users ADD CONSTRAINT ck_seen CHECK (last_login_at IS NOT NULL) NOT VALID")
        + "\n"
        + AUTOCOMMIT
        + "\n    ".join(
            [
                sql("ALTER TABLE users VALIDATE CONSTRAINT ck_seen"),
                sql("ALTER TABLE users ALTER COLUMN last_login_at SET NOT NULL"),
            ]
        ),
    ),
    safe("AB007", "foreign key not valid", sql(f"{USERS_FK} NOT VALID")),
    safe(
        "AB007",
        "check not valid",
        sql("ALTER TABLE subscription_plans ADD CONSTRAINT ck CHECK (price_cents < 10000000) NOT VALID"),
    ),
    safe("AB008", "unique using index", sql("ALTER TABLE users ADD CONSTRAINT uq_x UNIQUE USING INDEX ix_x")),
    safe("AB009", "new name beside the old", sql("ALTER TABLE users ADD COLUMN kind text")),
    safe("AB016", "comment", sql("COMMENT ON COLUMN users.last_login_at IS 'unused'")),
    safe(
        "AB001",
        "table and index created together",
        sql("CREATE TABLE notes (id int)", "CREATE INDEX ix_notes ON notes (id)"),
    ),
    safe(
        "AB001",
        "CREATE TABLE AS, then an index",
        sql("CREATE TABLE copy AS SELECT id FROM users", "CREATE INDEX ix_c ON copy (id)"),
    ),
    safe(
        "AB001",
        "SELECT INTO, then an index",
        sql("SELECT id INTO copy FROM users", "CREATE INDEX ix_c ON copy (id)"),
    ),
    safe("AB010", "table created and dropped", sql("CREATE TABLE scratch (id int)", "DROP TABLE scratch")),
    safe(
        "AB003",
        "index created and dropped",
        sql("CREATE TABLE s (id int)", "CREATE INDEX ix_s ON s (id)", "DROP INDEX ix_s", "DROP TABLE s"),
    ),
    safe(
        "AB010",
        "column added and dropped",
        sql("ALTER TABLE users ADD COLUMN tmp int", "ALTER TABLE users DROP COLUMN tmp"),
    ),
    safe("AB015", "a new table truncated", sql("CREATE TABLE scratch (id int)", "TRUNCATE scratch")),
    safe("AB011", "update by key", sql("UPDATE users SET role = 'user' WHERE id = 1")),
    safe(
        "AB011",
        "joined update in a batch",
        sql(
            "UPDATE subscriptions SET status = 'active' FROM users u "
            "WHERE subscriptions.user_id = u.id AND u.id < 100"
        ),
    ),
    safe("AB011", "delete by range", sql("DELETE FROM subscriptions WHERE id < 0")),
    safe("AB013", "analyze", sql("ANALYZE users")),
    safe("AB013", "reindex concurrently", AUTOCOMMIT + sql("REINDEX INDEX CONCURRENTLY ix_users_login")),
    safe("AB014", "enum value outside a transaction", AUTOCOMMIT + sql("ALTER TYPE mood ADD VALUE 'calm'")),
    safe(
        "AB021",
        "detach concurrently",
        AUTOCOMMIT + sql("ALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY"),
    ),
    safe("AB004", "set a default", sql("ALTER TABLE users ALTER COLUMN role SET DEFAULT 'user'")),
    safe("AB020", "DO block of safe SQL", sql("DO $$ BEGIN CREATE TABLE IF NOT EXISTS t2 (id int); END $$")),
    safe("AB020", "DO block that only talks", sql("DO $$ BEGIN RAISE NOTICE 'hello'; END $$")),
    safe("AB010", "a view", sql("CREATE VIEW active_users AS SELECT id, email FROM users WHERE is_active")),
    safe(
        "AB018",
        "exclusion on a new table",
        sql("CREATE TABLE b (p tstzrange)", "ALTER TABLE b ADD EXCLUDE USING gist (p WITH &&)"),
    ),
    safe(
        "AB019",
        "a new table made unlogged",
        sql("CREATE TABLE scratch (id int)", "ALTER TABLE scratch SET UNLOGGED"),
    ),
]
