"""One online run of ``env.py``: plan, gate, lock, apply each revision in its own transaction, report.

Every command that changes the schema is planned before Alembic writes anything:
the plan decides the dry run, the lock-free fast path (nothing pending: no lock)
and the production force gate. Then one migrator at a time applies each revision
in its own transaction, under ``lock_timeout`` and ``statement_timeout``,
retrying a lock timeout with backoff and naming the sessions that blocked it.
Read-only commands (``current``, ``check``, ``revision``) run in a transaction
that is rolled back, so they never create ``alembic_version``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TextIO

import sqlalchemy
from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import Connection, MetaData, text
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from atsboost import metrics
from atsboost.errors import AtsboostError, MigrationError
from atsboost.migrations.integrity import checksums
from atsboost.migrations.revisions import rewrite
from atsboost.migrations.run.blockers import Blocker, BlockerWatch
from atsboost.migrations.run.failures import failure, is_lock_timeout
from atsboost.migrations.run.gate import Gate
from atsboost.migrations.run.leftovers import CommittedStatements, left_behind, snapshot
from atsboost.migrations.run.locks import advisory_lock, migration_key
from atsboost.migrations.run.options import (
    AppliedRevision,
    Revision,
    invocation,
    options_of,
    resolved_invocation,
    run_flag,
)
from atsboost.migrations.run.plan import plan
from atsboost.migrations.run.progress import StatementLog
from atsboost.migrations.run.rendering import DroppedTable, dropped_tables, print_dry_run
from atsboost.migrations.run.session import migration_settings
from atsboost.migrations.run.spans import RevisionSpans

logger = logging.getLogger("atsboost.migrations")

_WRITING = frozenset({"upgrade", "downgrade", "stamp", "migrate"})


class OnlineRun:
    """Run the Alembic command at hand on ``conn`` with atsboost's safety around it."""

    def __init__(self, conn: Connection, metadata: Sequence[MetaData]) -> None:
        config = context.config
        options = options_of(config)
        self.conn = conn
        self.metadata = list(metadata)
        self.settings = migration_settings(config)
        self.dry_run = run_flag("dry_run", given=options.dry_run, default=self.settings.dry_run)
        self.force = run_flag("force", given=options.force, default=self.settings.force)
        self.command, self.destination = invocation(config)
        self.gate = Gate(
            self.settings,
            force=self.force,
            local_force=options.force is True,
            allow_data_loss=options.allow_data_loss,
        )
        self.external = conn.in_transaction()
        self.result = options.result
        self.result.dry_run = self.dry_run
        self.plan: list[Revision] = []
        self.upgrade = True
        self._done: set[str] = set()
        self._since = time.perf_counter()
        self._blockers: list[Blocker] = []
        self._objects: frozenset[str] = frozenset()
        self._statements: CommittedStatements | None = None
        self._progress: StatementLog | None = None
        self._spans = RevisionSpans()

    def run(self) -> None:
        """Run it; an AtsboostError says what failed (run_migrations hands it to Alembic as one line)."""
        self._configure()
        if self.command is None:
            self.command, self.destination = resolved_invocation()
        if self.command not in _WRITING:
            self._without_writes()
        elif self.command == "stamp":
            with self._lock():
                self._apply_once()
        else:
            self._migrate()

    def _configure(self) -> None:
        context.configure(
            connection=self.conn,
            target_metadata=self.metadata,
            transaction_per_migration=True,
            on_version_apply=self._applied,
            process_revision_directives=rewrite(self.metadata),
            include_name=checksums.not_ours,
        )

    def _migrate(self) -> None:
        started = time.perf_counter()
        current, self.upgrade = self._read_plan()
        self.result.before = current
        self.result.pending = list(self.plan)
        if self.dry_run:
            out: TextIO = context.config.output_buffer or sys.stdout
            args = (out, current, self.plan, self.metadata, self.settings)
            print_dry_run(*args, upgrade=self.upgrade, conn=self.conn)
            self.result.after = current
            return
        if self.plan:
            self._check_gate()
            with self._lock():
                self._apply_with_retries()
        self.result.after = self._current_heads()
        self._backfill_checksums()
        if not self.result.applied:
            logger.info("nothing to migrate: the database is at %s", ", ".join(self.result.after) or "base")
        self.result.seconds = time.perf_counter() - started

    def _read_plan(self) -> tuple[tuple[str, ...], bool]:
        """Read the current revision and plan the steps; then end the read transaction."""
        if self.dry_run and not self.external:
            self.conn.execute(text("SET TRANSACTION READ ONLY"))
        current = tuple(context.get_context().get_current_heads())
        upgrade, self.plan = plan(self.command, self.destination or "heads", current, scripts=context.script)
        if not self.external:
            # Never wait for the lock inside a transaction: CREATE INDEX CONCURRENTLY would wait for us.
            self.conn.rollback()
        return current, upgrade

    def _check_gate(self) -> None:
        if self.upgrade:
            self.gate.check_upgrade(self.plan)
            return
        to_base = (self.destination or "").rpartition("@")[2] == "base"
        losses = self.gate.check_downgrade(self.plan, to_base=to_base, dropped=self._dropped)
        if losses:
            logger.warning("reverting drops %s (allowed: --allow-data-loss)", ", ".join(map(str, losses)))

    def _dropped(self) -> list[DroppedTable]:
        """Count the rows of the tables the planned downgrades drop."""
        try:
            return dropped_tables(context.script, self.plan, self.conn)
        finally:
            if not self.external:
                self.conn.rollback()

    def _backfill_checksums(self) -> None:
        """Back-fill missing checksums (a database older than them), and warn about edited revisions."""
        checksums.ensure_table(self.conn)
        checksums.backfill(self.conn, context.script, self.result.after)
        for problem in checksums.mismatches(self.conn, context.script):
            logger.warning(
                "%s; `atsboost-db migrate validate` lists them, `migrate repair` records them", problem
            )
        if not self.external:
            self.conn.commit()

    def _current_heads(self) -> tuple[str, ...]:
        heads = tuple(context.get_context().get_current_heads())
        if not self.external and self.conn.in_transaction():
            self.conn.rollback()
        return heads

    def _lock(self) -> Any:
        key = migration_key(context.get_context().version_table or "alembic_version")
        queued = options_of(context.config).lock_held == key  # the caller holds it: queue.upgrade
        return (
            contextlib.nullcontext()
            if queued
            else advisory_lock(self.conn.engine, key, wait=self.settings.lock_wait)
        )

    def _apply_with_retries(self) -> None:
        retrying = Retrying(
            retry=retry_if_exception(is_lock_timeout),
            stop=stop_after_attempt(self.settings.lock_retries + 1),
            wait=wait_exponential(multiplier=0.5, max=8) + wait_random(0, 0.5),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            retrying(self._apply_once)
        except sqlalchemy.exc.DBAPIError as exc:
            raise self._failure(exc) from None
        except AtsboostError:
            raise
        except Exception as exc:
            raise MigrationError(
                f"revision {self._running() or 'the migration'} failed and was rolled back: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _apply_once(self) -> None:
        if not self.external:
            self.conn.begin()  # so alembic_version and the first revision commit together
        pid = self.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        checksums.ensure_table(self.conn)
        self._objects = snapshot(self.conn)
        interval = min(0.5, self.settings.lock_timeout / 3)
        self._since = time.perf_counter()
        self._statements = CommittedStatements(self.conn)
        self._progress = StatementLog(self.conn, lambda: getattr(self._running(), "id", None))
        self._announce()
        try:
            with BlockerWatch(self.conn.engine, pid, interval=interval) as watch:
                try:
                    context.run_migrations()
                except BaseException as exc:
                    self._spans.end(exc)
                    raise
                finally:
                    self._blockers = watch.blockers or self._blockers
        finally:
            self._statements.close()
            self._progress.close()
            if not self.external and self.conn.in_transaction():
                self.conn.rollback()

    def _without_writes(self) -> None:
        if self.external:
            context.run_migrations()
            return
        self.conn.begin()
        try:
            context.run_migrations()
        finally:
            self.conn.rollback()

    # Alembic passes these by keyword; positional-or-keyword matches its type hint too.
    def _applied(
        self,
        ctx: MigrationContext,
        step: MigrationInfo,
        heads: Collection[Any],
        run_args: Mapping[str, Any],
    ) -> None:
        if self.dry_run or step.is_stamp or not step.up_revision_ids:
            return
        now = time.perf_counter()
        seconds, self._since = now - self._since, now
        done = next((r for r in self.plan if r.id == step.up_revision_id), None)
        done = done or Revision(str(step.up_revision_id), "")
        self._done.add(done.id)
        self.result.applied.append(AppliedRevision(done.id, done.message, step.is_upgrade, seconds))
        self._objects = snapshot(self.conn)
        if self._statements is not None:
            self._statements.next_revision()
        script = context.script.get_revision(done.id)
        if step.is_upgrade and script is not None:
            checksums.record(self.conn, script, context.script)
        elif not step.is_upgrade:
            checksums.forget(self.conn, done.id)
        verb = "applied" if step.is_upgrade else "reverted"
        fields = {"event": f"migration_{verb}", "revision": done.id, "duration_seconds": round(seconds, 3)}
        logger.info("%s %s in %.2f s", verb, done, seconds, extra=fields)
        if step.is_upgrade and not self.dry_run:
            metrics.registry.migrations.applied(seconds)
        self._spans.end()
        self._announce()

    def _announce(self) -> None:
        running = self._running()
        if running is not None and not self.dry_run:
            verb = "applying" if self.upgrade else "reverting"
            logger.info("%s %s ...", verb, running)
            self._spans.begin(running, upgrade=self.upgrade)

    def _running(self) -> Revision | None:
        """Return the planned revision being applied now: the first one not yet done."""
        return next((r for r in self.plan if r.id not in self._done), None)

    def _log_retry(self, state: RetryCallState) -> None:
        logger.warning(
            "%s waited longer than lock_timeout (%gs) for a lock; attempt %d failed, retrying in %.1f s",
            self._running() or "a revision",
            self.settings.lock_timeout,
            state.attempt_number,
            state.upcoming_sleep,
        )

    def _failure(self, exc: sqlalchemy.exc.DBAPIError) -> MigrationError:
        checked = not (self.external or is_lock_timeout(exc))
        stayed = left_behind(self._objects, self.conn) if checked else []
        committed = self._statements.committed if checked and self._statements is not None else []
        return failure(exc, self._running(), self.settings, self._blockers, stayed, committed)
