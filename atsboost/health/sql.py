"""The read-only SQL behind the health report (after PgHero's and check_postgres's checks).

Only catalog and statistics views; every query is safe for an ordinary role (rows
it may not see are simply absent, or its query text reads '<insufficient privilege>').
"""

SERVER = """
SELECT current_setting('server_version') AS version,
       COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS ssl
"""

DATABASE_SIZE = "SELECT pg_database_size(current_database())"

_USER_RELATION = """
    n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
"""

LARGEST_TABLES = f"""
SELECT format('%I.%I', n.nspname, c.relname) AS "table",
       pg_table_size(c.oid) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       pg_total_relation_size(c.oid) AS total_bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p') AND {_USER_RELATION}
ORDER BY total_bytes DESC, 1 LIMIT 10
"""

# The same from the catalog alone (pages as of the last VACUUM, ANALYZE or index build): it takes
# no lock, so it answers while a table is locked ACCESS EXCLUSIVE (a migration, a VACUUM FULL).
LARGEST_TABLES_ESTIMATED = f"""
SELECT "table", table_bytes, index_bytes, table_bytes + index_bytes AS total_bytes FROM (
  SELECT format('%I.%I', n.nspname, c.relname) AS "table",
         (c.relpages + COALESCE(t.relpages, 0))::bigint * current_setting('block_size')::int AS table_bytes,
         COALESCE((SELECT sum(ic.relpages) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                   WHERE i.indrelid = c.oid), 0)::bigint * current_setting('block_size')::int AS index_bytes
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
  WHERE c.relkind IN ('r', 'm', 'p') AND {_USER_RELATION}
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
TABLE_STATS = """
SELECT format('%I.%I', schemaname, relname) AS "table",
       GREATEST(n_live_tup, 0) AS estimated_rows,
       seq_scan AS seq_scans, COALESCE(idx_scan, 0) AS idx_scans, n_dead_tup AS dead_tuples,
       last_vacuum, last_autovacuum, last_analyze, last_autoanalyze,
       (n_live_tup >= 10000 AND seq_scan > 100
        AND seq_scan * 100 > (seq_scan + COALESCE(idx_scan, 0)) * 5) AS seq_scan_heavy
FROM pg_stat_user_tables
ORDER BY n_live_tup DESC, 1 LIMIT 50
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

LONG_QUERIES = """
SELECT pid, usename AS "user", application_name AS application,
       round(extract(epoch FROM now() - COALESCE(query_start, xact_start))::numeric, 1)::float AS seconds,
       state, NULLIF(concat_ws(':', wait_event_type, wait_event), '') AS wait_event,
       left(query, 200) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND state <> 'idle' AND pid <> pg_backend_pid()
  AND now() - COALESCE(query_start, xact_start) > make_interval(secs => :seconds)
ORDER BY seconds DESC
"""

BLOCKING = """
SELECT blocked.pid AS blocked_pid, left(blocked.query, 200) AS blocked_query,
       round(extract(epoch FROM now() - blocked.query_start)::numeric, 1)::float AS blocked_seconds,
       blocker.pid AS blocking_pid, blocker.state AS blocking_state,
       left(blocker.query, 200) AS blocking_query
FROM pg_stat_activity blocked
CROSS JOIN LATERAL unnest(pg_blocking_pids(blocked.pid)) AS b(pid)
JOIN pg_stat_activity blocker ON blocker.pid = b.pid
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

UNUSED_INDEXES = """
SELECT index, "table", bytes, scans FROM (
  SELECT format('%I.%I', s.schemaname, s.indexrelname) AS index,
         format('%I.%I', s.schemaname, s.relname) AS "table",
         c.relpages::bigint * current_setting('block_size')::int AS bytes, s.idx_scan AS scans
  FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
  JOIN pg_class c ON c.oid = s.indexrelid
  WHERE s.idx_scan = 0 AND NOT i.indisunique
) unused WHERE bytes >= :bytes
ORDER BY bytes DESC
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

HAS_STATEMENTS = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')"

STATEMENTS = """
SELECT left(query, 200) AS query, calls,
       round((total_exec_time + total_plan_time)::numeric, 1)::float AS total_ms,
       round(mean_exec_time::numeric, 2)::float AS mean_ms
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_ms DESC LIMIT 10
"""
