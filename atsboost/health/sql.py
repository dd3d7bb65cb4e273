"""The read-only SQL behind the health report (after PgHero's and check_postgres's checks).

Only catalog and statistics views; every query is safe for an ordinary role (rows
it may not see are simply absent, or its query text reads '<insufficient privilege>').
A parameter is written ``$1``: the collector runs these through psycopg's RawCursor.
"""

SERVER = """
SELECT current_setting('server_version') AS version,
       COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS ssl
"""

DATABASE_SIZE = "SELECT pg_database_size(current_database())"

_USER_RELATION = """
    n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
"""

# Relations in user schemas; the database size is read exactly up to this many, from the catalog
# above it (pg_database_size reads the size of every file: 0.3 s at 20,000 tables).
RELATIONS = f"""
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_USER_RELATION}
"""
EXACT_DATABASE_SIZE_UP_TO = 5000
DATABASE_SIZE_ESTIMATED = "SELECT sum(relpages)::bigint * current_setting('block_size')::int FROM pg_class"

# Candidates for the largest tables, ranked by the catalog's page counts (no file is read): the
# 30 largest heaps with their TOAST, and the tables of the 30 largest indexes. Only these are
# then sized exactly, so the report stays fast with tens of thousands of tables.
_CANDIDATES = f"""
WITH candidates AS (
  (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
   WHERE c.relkind IN ('r', 'm', 'p') AND {_USER_RELATION}
   ORDER BY c.relpages + COALESCE(t.relpages, 0) DESC, c.oid LIMIT 30)
  UNION
  (SELECT i.indrelid FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
   JOIN pg_namespace n ON n.oid = ic.relnamespace
   WHERE {_USER_RELATION} ORDER BY ic.relpages DESC, ic.oid LIMIT 30)
)
"""

LARGEST_TABLES = f"""{_CANDIDATES}
SELECT format('%I.%I', n.nspname, c.relname) AS "table",
       pg_table_size(c.oid) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       pg_total_relation_size(c.oid) AS total_bytes
FROM candidates JOIN pg_class c ON c.oid = candidates.oid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p')
ORDER BY total_bytes DESC, 1 LIMIT 10
"""

# The same from the catalog alone (pages as of the last VACUUM, ANALYZE or index build): it takes
# no lock, so it answers while a table is locked ACCESS EXCLUSIVE (a migration, a VACUUM FULL).
LARGEST_TABLES_ESTIMATED = f"""{_CANDIDATES}
SELECT "table", table_bytes, index_bytes, table_bytes + index_bytes AS total_bytes FROM (
  SELECT format('%I.%I', n.nspname, c.relname) AS "table",
         (c.relpages + COALESCE(t.relpages, 0))::bigint * current_setting('block_size')::int AS table_bytes,
         COALESCE((SELECT sum(ic.relpages) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                   WHERE i.indrelid = c.oid), 0)::bigint * current_setting('block_size')::int AS index_bytes
  FROM candidates JOIN pg_class c ON c.oid = candidates.oid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
  WHERE c.relkind IN ('r', 'm', 'p')
) sizes ORDER BY total_bytes DESC, 1 LIMIT 10
"""

# Who holds a lock that would make the report wait: named in a note instead.
LOCK_HOLDERS = """
SELECT string_agg(DISTINCT format('%s (pid %s)', l.relation::regclass, l.pid), ', ')
FROM pg_locks l
WHERE l.locktype = 'relation' AND l.granted AND l.mode = 'AccessExclusiveLock'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""

# Large and sequentially scanned a lot: the guide's "check for missing indexes" (PgHero's rule).
# The 50 largest by live rows first, from one statistics function; the rest of
# pg_stat_user_tables' columns only for those (the view computes every column of every table).
TABLE_STATS = f"""
SELECT format('%I.%I', nspname, relname) AS "table", live AS estimated_rows,
       seq_scans, idx_scans, pg_stat_get_dead_tuples(oid) AS dead_tuples,
       pg_stat_get_last_vacuum_time(oid) AS last_vacuum,
       pg_stat_get_last_autovacuum_time(oid) AS last_autovacuum,
       pg_stat_get_last_analyze_time(oid) AS last_analyze,
       pg_stat_get_last_autoanalyze_time(oid) AS last_autoanalyze,
       (live >= 10000 AND seq_scans > 100 AND seq_scans * 100 > (seq_scans + idx_scans) * 5) AS seq_scan_heavy
FROM (
  SELECT oid, nspname, relname, live, pg_stat_get_numscans(oid) AS seq_scans,
         COALESCE((SELECT sum(pg_stat_get_numscans(i.indexrelid)) FROM pg_index i
                   WHERE i.indrelid = top.oid), 0)::bigint AS idx_scans
  FROM (
    SELECT c.oid, n.nspname, c.relname, GREATEST(pg_stat_get_live_tuples(c.oid), 0) AS live
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'm', 'p') AND {_USER_RELATION}
    ORDER BY live DESC, c.oid LIMIT 50
  ) top
) stats
ORDER BY live DESC, 1
"""

CONNECTION_LIMITS = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int
       + COALESCE(current_setting('reserved_connections', true)::int, 0) AS reserved
"""

BY_STATE = """
SELECT COALESCE(state, 'unknown') AS state, count(*)::int AS count
FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 2 DESC, 1
"""

BY_APPLICATION = """
SELECT COALESCE(NULLIF(application_name, ''), '(none)') AS application, count(*)::int AS count
FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 2 DESC, 1
"""

OLDEST_IDLE_IN_TRANSACTION = """
SELECT round(extract(epoch FROM max(now() - state_change))::numeric, 1)::float
FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'
"""

# This database's only: another database's work on a shared server is its own report's business.
LONG_QUERIES = """
SELECT pid, usename AS "user", application_name AS application,
       round(extract(epoch FROM now() - COALESCE(query_start, xact_start))::numeric, 1)::float AS seconds,
       state, NULLIF(concat_ws(':', wait_event_type, wait_event), '') AS wait_event,
       left(query, 200) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND state <> 'idle' AND pid <> pg_backend_pid()
  AND datname = current_database()
  AND now() - COALESCE(query_start, xact_start) > make_interval(secs => $1)
ORDER BY seconds DESC
"""

# This database's sessions only, as LONG_QUERIES: another database's lock waits are its own report's.
BLOCKING = """
SELECT blocked.pid AS blocked_pid, left(blocked.query, 200) AS blocked_query,
       round(extract(epoch FROM now() - blocked.query_start)::numeric, 1)::float AS blocked_seconds,
       blocker.pid AS blocking_pid, blocker.state AS blocking_state,
       left(blocker.query, 200) AS blocking_query
FROM pg_stat_activity blocked
CROSS JOIN LATERAL unnest(pg_blocking_pids(blocked.pid)) AS b(pid)
JOIN pg_stat_activity blocker ON blocker.pid = b.pid
WHERE blocked.datname = current_database()
ORDER BY blocked_seconds DESC
"""

# An INVALID index that no CREATE INDEX CONCURRENTLY is still building: a failed build.
INVALID_INDEXES = f"""
SELECT format('%I.%I', n.nspname, c.relname) AS index, i.indrelid::regclass::text AS "table",
       pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid AND {_USER_RELATION}
  AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid)
ORDER BY 1
"""

# Sizes from the catalog (pages as of the index's build or last VACUUM): no lock taken.
# The same without the definition, which needs a lock on the table: for while it is locked.
INVALID_INDEXES_UNLOCKED = INVALID_INDEXES.replace(
    "pg_get_indexdef(i.indexrelid)", "'(not readable while the table is locked)'"
)

# Large enough to matter by the catalog's page count first, then never scanned.
UNUSED_INDEXES = f"""
SELECT format('%I.%I', n.nspname, c.relname) AS index, format('%I.%I', n.nspname, t.relname) AS "table",
       c.relpages::bigint * current_setting('block_size')::int AS bytes, pg_stat_get_numscans(c.oid) AS scans
FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class t ON t.oid = i.indrelid
WHERE c.relkind = 'i' AND NOT i.indisunique AND {_USER_RELATION}
  AND c.relpages::bigint * current_setting('block_size')::int >= $1
  AND pg_stat_get_numscans(c.oid) = 0
ORDER BY bytes DESC, 1
"""

# A valid, non-unique index whose key is a prefix of another's, with the same method,
# expressions and predicate, is redundant (PgHero's rule).
DUPLICATE_INDEXES = f"""
SELECT format('%I.%I', n.nspname, ca.relname) AS index, b.indexrelid::regclass::text AS covered_by,
       a.indrelid::regclass::text AS "table"
FROM pg_index a
JOIN pg_index b ON b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid
JOIN pg_class ca ON ca.oid = a.indexrelid JOIN pg_class cb ON cb.oid = b.indexrelid
JOIN pg_namespace n ON n.oid = ca.relnamespace
WHERE NOT a.indisunique AND a.indisvalid AND b.indisvalid AND ca.relam = cb.relam AND {_USER_RELATION}
  AND (b.indkey::text || ' ') LIKE (a.indkey::text || ' %')
  AND (a.indkey::text <> b.indkey::text OR b.indisunique OR a.indexrelid > b.indexrelid)
  AND COALESCE(pg_get_expr(a.indexprs, a.indrelid), '') = COALESCE(pg_get_expr(b.indexprs, b.indrelid), '')
  AND COALESCE(pg_get_expr(a.indpred, a.indrelid), '') = COALESCE(pg_get_expr(b.indpred, b.indrelid), '')
ORDER BY 1
"""

# Judged only after 10,000 block accesses: a cold, fresh database says nothing about its cache.
CACHE_HIT = """
SELECT CASE WHEN sum(heap_blks_hit) + sum(heap_blks_read) >= 10000
            THEN sum(heap_blks_hit)::float / (sum(heap_blks_hit) + sum(heap_blks_read)) END
FROM pg_statio_user_tables
"""

XID_AGE = "SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database()"

SEQUENCES = """
SELECT format('%I.%I', schemaname, sequencename) AS sequence, last_value, max_value,
       round((last_value::numeric / max_value)::numeric, 4)::float AS used
FROM pg_sequences WHERE last_value IS NOT NULL AND increment_by > 0
ORDER BY used DESC LIMIT 10
"""

SEES_EVERY_SESSION = "SELECT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')"

HAS_STATEMENTS = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')"

STATEMENTS = """
SELECT left(query, 200) AS query, calls,
       round((total_exec_time + total_plan_time)::numeric, 1)::float AS total_ms,
       round(mean_exec_time::numeric, 2)::float AS mean_ms
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_ms DESC LIMIT 10
"""
