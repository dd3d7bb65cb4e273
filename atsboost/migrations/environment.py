"""What ``alembic/env.py`` runs: the safety Alembic leaves to each team.

Every command that changes the schema is planned before Alembic writes anything:
the plan decides the dry run, the lock-free fast path (nothing pending: no lock)
and the production force gate. Then one migrator at a time applies each revision
in its own transaction, under ``lock_timeout`` and ``statement_timeout``,
retrying a lock timeout with backoff and naming the sessions that blocked it.
Read-only commands (``current``, ``check``, ``revision --autogenerate``) run in
a transaction that is rolled back, so they never create ``alembic_version``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TextIO

import sqlalchemy
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import Connection, text
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

from atsboost.config.envvars import parse_boolean
from atsboost.config.settings import Environment
from atsboost.errors import AtsboostError, MigrationError, MigrationRefusedError
from atsboost.migrations.locks import Blocker, BlockerWatch, advisory_lock, lock_key
from atsboost.migrations.session import environment_context, migration_settings, session_timeouts

logger = logging.getLogger("atsboost.migrations")

DRY_RUN = "atsboost.dry_run"
FORCE = "atsboost.force"
RESULT = "atsboost.result"
AUTOGENERATE = "atsboost.autogenerate"


@dataclass(frozen=True)
class Revision:
    """A revision by id and message."""

    id: str
    message: str

    def __str__(self) -> str:
        return f"{self.id} ({self.message})"


@dataclass(frozen=True)
class AppliedRevision:
    """One revision applied (or reverted) and how long it took."""

    id: str
    message: str
    upgrade: bool
    seconds: float


@dataclass
class MigrationResult:
    """What a migration run did; the caller finds it in ``config.attributes``."""

    before: tuple[str, ...] = ()
    pending: list[Revision] = field(default_factory=list)
    applied: list[AppliedRevision] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0


def flag(context: EnvironmentContext, name: str, attribute: str, *, default: bool) -> bool:
    """Read a run flag from the API/CLI (config.attributes), ``-x name=...``, or the environment."""
    given = context.config.attributes.get(attribute)
    if given is not None:
        return bool(given)
    x_args = context.get_x_argument(as_dictionary=True)
    for key in (name, name.replace("_", "")):
        if key in x_args:
            return parse_boolean(f"-x {key}", x_args[key])
    return default


class OnlineRun:
    """One online run of env.py: plan, gate, lock, apply with retries, report."""

    def __init__(self, context: EnvironmentContext | ModuleType, conn: Connection) -> None:
        self.context = environment_context(context)
        self.conn = conn
        self.settings = migration_settings(self.context.config)
        self.dry_run = flag(self.context, "dry_run", DRY_RUN, default=self.settings.dry_run)
        self.force = flag(self.context, "force", FORCE, default=self.settings.force)
        self.external = conn.in_transaction()
        self.result = MigrationResult(dry_run=self.dry_run)
        self.context.config.attributes[RESULT] = self.result
        self._plan_fn = self.context.context_opts["fn"]
        self._running: tuple[Revision, float] | None = None
        self._blockers: list[Blocker] = []

    def configure_options(self) -> dict[str, Any]:
        """Return the ``context.configure`` arguments this run adds to the connection and metadata."""
        return {
            "transaction_per_migration": True,
            "fn": self._tracked,
            "on_version_apply": self._applied,
            "process_revision_directives": _skip_empty_autogenerate,
        }

    def run_migrations(self) -> None:
        """Run the command Alembic was asked for, with atsboost's safety around it.

        Failures reach Alembic as CommandError, which its CLI prints as one ``FAILED:``
        line; the atsboost error stays attached as the cause for library callers.
        """
        try:
            self._run_guarded()
        except AtsboostError as exc:
            raise CommandError(str(exc)) from exc

    def _run_guarded(self) -> None:
        opts = self.context.context_opts
        if opts.get("dont_mutate") or "revision_context" in opts:
            self._without_writes()
            return
        started = time.perf_counter()
        current, steps = self._plan()
        self.result.before = current
        self.result.pending = [_revision(step) for step in steps]
        if self.dry_run:
            self._print_dry_run(current)
        elif steps:
            self._gate(steps)
            engine = self.conn.engine
            with advisory_lock(
                engine, lock_key(f"atsboost:migrate:{_version_table(opts)}"), wait=self.settings.lock_wait
            ):
                self._apply_with_retries()
        else:
            logger.info("nothing to migrate: the database is at %s", ", ".join(current) or "base")
        self.result.seconds = time.perf_counter() - started

    def _plan(self) -> tuple[tuple[str, ...], list[Any]]:
        """Read the current revision and compute the steps; then end the read transaction."""
        if self.dry_run and not self.external:
            self.conn.execute(text("SET TRANSACTION READ ONLY"))
        migration_context = self.context.get_context()
        current = migration_context.get_current_heads()
        steps = list(self._plan_fn(current, migration_context))
        if not self.external:
            # Never wait for the lock inside a transaction: CREATE INDEX CONCURRENTLY would wait for us.
            self.conn.rollback()
        return current, steps

    def _gate(self, steps: Sequence[Any]) -> None:
        if self.settings.environment is not Environment.PRODUCTION or self.force:
            return
        upgrades = all(getattr(step, "is_upgrade", False) for step in steps)
        if upgrades and not self.settings.require_force:
            return
        what = "apply" if upgrades else "revert"
        listed = ", ".join(str(_revision(step)) for step in steps)
        why = "MIGRATION_REQUIRE_FORCE=true" if upgrades else "a downgrade in production always needs force"
        raise MigrationRefusedError(
            f"refusing to {what} {len(steps)} revision(s) in production ({why}): {listed}. Nothing was "
            "changed. Review them with MIGRATION_DRYRUN=true (or --dry-run), then run again with "
            "MIGRATION_FORCE=true (or --force, or alembic -x force=true)"
        )

    def _apply_with_retries(self) -> None:
        retrying = Retrying(
            retry=retry_if_exception(_is_lock_timeout),
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
            running = self._running[0] if self._running else "the migration"
            raise MigrationError(
                f"revision {running} failed and was rolled back: {type(exc).__name__}: {exc}"
            ) from exc

    def _apply_once(self) -> None:
        if not self.external:
            self.conn.begin()  # so alembic_version and the first revision commit together
        pid = self.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        interval = min(0.5, self.settings.lock_timeout / 3)
        try:
            with BlockerWatch(self.conn.engine, pid, interval=interval) as watch:
                try:
                    self.context.run_migrations()
                finally:
                    self._blockers = watch.blockers or self._blockers
        finally:
            if not self.external and self.conn.in_transaction():
                self.conn.rollback()

    def _without_writes(self) -> None:
        if self.external:
            self.context.run_migrations()
            return
        self.conn.begin()
        try:
            self.context.run_migrations()
        finally:
            self.conn.rollback()

    def _tracked(self, heads: Any, migration_context: MigrationContext) -> Iterator[Any]:
        for step in self._plan_fn(heads, migration_context):
            revision = _revision(step)
            self._running = (revision, time.perf_counter())
            if not self.dry_run:
                verb = "applying" if getattr(step, "is_upgrade", True) else "reverting"
                logger.info("%s %s ...", verb, revision)
            yield step

    def _applied(self, *, ctx: MigrationContext, step: Any, heads: Any, run_args: Any) -> None:
        if self.dry_run or self._running is None:
            return
        revision, started = self._running
        seconds = time.perf_counter() - started
        upgrade = bool(step.is_upgrade)
        self.result.applied.append(AppliedRevision(revision.id, revision.message, upgrade, seconds))
        logger.info("%s %s in %.2f s", "applied" if upgrade else "reverted", revision, seconds)

    def _log_retry(self, state: Any) -> None:
        running = self._running[0] if self._running else "a revision"
        logger.warning(
            "%s waited longer than lock_timeout (%gs) for a lock; attempt %d failed, retrying in %.1f s",
            running,
            self.settings.lock_timeout,
            state.attempt_number,
            state.upcoming_sleep,
        )

    def _failure(self, exc: sqlalchemy.exc.DBAPIError) -> MigrationError:
        running = self._running[0] if self._running else None
        where = f"revision {running}" if running else "the migration"
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        statement = " ".join((exc.statement or "").split())[:300]
        if _is_lock_timeout(exc):
            blockers = "; ".join(b.describe() for b in self._blockers) or "no blocking session was seen"
            pids = ", ".join(str(b.pid) for b in self._blockers) or "pid"
            return MigrationError(
                f"{where} could not get a lock within MIGRATION_LOCK_TIMEOUT={self.settings.lock_timeout:g}s "
                f"after {self.settings.lock_retries + 1} attempts; blocked by {blockers}. Statement: "
                f"{statement}. It was rolled back; let the blocking transaction finish, or end it "
                f"(SELECT pg_terminate_backend({pids})), and run again"
            )
        return MigrationError(
            f"{where} failed and was rolled back: {reason}. Statement: {statement}. The database "
            "stays at the revision before it; fix the revision and run again"
        )

    def _print_dry_run(self, current: tuple[str, ...]) -> None:
        out: TextIO = self.context.config.output_buffer or sys.stdout
        pending = self.result.pending
        state = ", ".join(current) if current else "none (empty database)"
        print(f"-- atsboost dry run: nothing is applied. Current revision: {state}", file=out)
        if not pending:
            print("-- nothing to migrate: the database is at head", file=out)
            return
        print(f"-- {len(pending)} pending revision(s), in order:", file=out)
        for revision in pending:
            print(f"--   {revision}", file=out)
        print("-- The SQL below is what a migration would run, with the same timeouts:", file=out)
        self.context.configure(
            dialect_name="postgresql",
            as_sql=True,
            # Several heads (branches) are accepted at run time: MigrationContext reads a list.
            starting_rev=current[0] if len(current) == 1 else (list(current) or None),  # type: ignore[arg-type]
            literal_binds=True,
            transaction_per_migration=True,
            output_buffer=out,
            target_metadata=self.context.context_opts.get("target_metadata"),
        )
        for statement in session_timeouts(self.settings):
            self.context.execute(statement)
        self.context.run_migrations()


def _revision(step: Any) -> Revision:
    script = getattr(step, "revision", None)
    if script is not None:
        return Revision(script.revision, script.doc or "")
    return Revision(str(getattr(step, "short_log", step)), "stamp")


def _version_table(opts: dict[str, Any]) -> str:
    return str(opts.get("version_table") or "alembic_version")


def _is_lock_timeout(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) == "55P03"


def _skip_empty_autogenerate(context: MigrationContext, revision: Any, directives: list[Any]) -> None:
    """With ``migrate create --autogenerate``, write no file when the models match the database."""
    if context.config is None or not context.config.attributes.get(AUTOGENERATE):
        return
    if directives and directives[0].upgrade_ops.is_empty():
        directives[:] = []
