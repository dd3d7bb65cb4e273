"""What every ``atsboost-db`` command shares: the group, its error handling, logging and settings.

Library errors become one readable line and exit code 1 here, and only here;
``--debug`` shows the traceback. The settings are read from the environment once
per invocation, when a command first needs them, so ``--help`` loads nothing heavy.
"""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from atsboost.cli.progress import LiveLine
from atsboost.errors import AtsboostError, MigrationLintError

if TYPE_CHECKING:
    from atsboost.config.settings import Settings

# Our own progress lines say what runs; the libraries' INFO chatter is for --debug.
# (SQLAlchemy logs pool lifecycle under the pool class's module: atsboost.runtime.pool.queue.)
_QUIET = ("pgserver", "alembic", "atsboost.runtime.pool.queue", "atsboost.runtime.shutdown")


class LintRefused(click.ClickException):
    """`migrate` refused by the lint (MIGRATION_LINT=error): exit code 4, as the README documents."""

    exit_code = 4


class Group(click.Group):
    """Turn AtsboostError into ``Error: ...`` and exit code 1, with a traceback under --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; report an AtsboostError, or a database failure, as one line."""
        try:
            return super().invoke(ctx)
        except Exception as exc:
            _stop_live_line()
            error = exc if isinstance(exc, AtsboostError) else _database_error(ctx, exc)
            if error is None:
                raise
            meta = ctx.find_root().meta
            failure = LintRefused if isinstance(error, MigrationLintError) else click.ClickException
            if meta.get("atsboost.json_logs"):  # the error (and its traceback) is a line of JSON too
                details = exc if meta.get("atsboost.debug") else None
                logging.getLogger("atsboost.cli").error(
                    str(error), exc_info=details, extra={"event": "command_failed"}
                )
                raise click.exceptions.Exit(failure.exit_code) from None
            if meta.get("atsboost.debug"):
                traceback.print_exc()
            raise failure(str(error)) from None
        finally:
            _stop_live_line()


def _stop_live_line() -> None:
    """Take a terminal's live line off: the command ends, or its error is printed next."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _StderrHandler) and handler.live is not None:
            handler.live.stop()


def _database_error(ctx: click.Context, exc: Exception) -> AtsboostError | None:
    """Translate a driver error that escaped a command, as every other path does; else None."""
    import psycopg  # loaded already if such an error was raised

    if not isinstance(getattr(exc, "orig", None) or exc, psycopg.Error):  # psycopg's, or SQLAlchemy's
        return None
    from atsboost.config.urls import ConnectionURL
    from atsboost.runtime.diagnosis import database_error

    settings = ctx.ensure_object(Invocation).settings
    return database_error(settings.url or ConnectionURL(drivername="postgresql", database="(embedded)"), exc)


@dataclass
class Invocation:
    """One run of ``atsboost-db``: its settings, read from the environment on first use."""

    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The settings of this invocation (read once; a bad variable fails here with its fix)."""
        if self._settings is None:
            from atsboost.config.settings import read_settings

            self._settings = read_settings()
        return self._settings


pass_invocation = click.make_pass_decorator(Invocation, ensure=True)

plans_option = click.option(
    "--plans",
    "plans_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Seed from this plan catalogue (TOML) instead of the shipped one.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
force_option = click.option(
    "--force", is_flag=True, default=None, help="Allow migrating in production when a gate requires it."
)


class _StderrHandler(logging.StreamHandler[Any]):
    """Write to whatever ``sys.stderr`` is at the time (click's test runner swaps it).

    On a terminal it keeps a migration's running statement on a live last line.
    """

    live: LiveLine | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record; on a terminal, above the live line, which then follows the record."""
        if self.live is not None:
            self.live.clear()
        super().emit(record)
        if self.live is not None:
            self.live.follow(record)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _OnceACommand(logging.Filter):
    """Let a notice that every connection of a command repeats through once (the embedded server's)."""

    EVENTS = frozenset({"embedded_in_use"})

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """Pass a record unless it is one of EVENTS already passed in this command."""
        event = getattr(record, "event", None)
        if event not in self.EVENTS:
            return True
        seen = event in self._seen
        self._seen.add(event)
        return not seen


def configure_logging(*, debug: bool, json_lines: bool = False) -> None:
    """Show log lines on stderr: ours at INFO, everything under ``--debug``; as JSON with ``json_lines``."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        root.addHandler(handler)
    if json_lines:
        from atsboost.logs import JsonLogFormatter

        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    terminal = not json_lines and sys.stderr.isatty()
    handler.live = LiveLine(lambda: sys.stderr) if terminal else None
    for stale in [f for f in handler.filters if isinstance(f, _OnceACommand)]:
        handler.removeFilter(stale)  # a command of its own: the notices once more
    handler.addFilter(_OnceACommand())
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)
