"""Public Alembic histories, as their packages ship them, in an `atsboost-db migrate init` project.

MLflow (mlflow-skinny) and Prefect ship their migration histories for PostgreSQL in
their wheels. Their revisions import the packages' own models, and Prefect pins an
older FastAPI than the dev environment's, so they live in a virtual environment of
their own with atsboost installed from this checkout as a wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # run as a script (.ci/run) before any environment holds SQLAlchemy
    from sqlalchemy.engine import URL

REPO = Path(__file__).resolve().parent.parent
# Set by .ci/run so that both of its suite runs share one environment; else each session builds one.
PYTHON_VARIABLE = "ATSBOOST_TEST_HISTORIES_PYTHON"
# .ci/run builds it in the background while atsboost installs: this file is there until it is done.
BUILDING, FAILED = ".building", ".failed"
BUILD_SECONDS = 900
Result = subprocess.CompletedProcess[str]
PACKAGES = ("mlflow-skinny==3.17.2", "prefect==3.9.1")


@dataclass(frozen=True)
class History:
    """One public history: where its revisions are in its package, and what it expects to exist."""

    name: str
    package: str  # the importable package holding the revisions
    versions: str  # the revisions' folder, inside the package
    # Python run on the database before the first revision (MLflow creates its first tables
    # from models, then migrates them), with the URL in the variable URL
    prepare: str = ""


MLFLOW = History(
    "mlflow",
    "mlflow",
    "store/db_migrations/versions",
    prepare=(
        "import os, sqlalchemy\n"
        "from mlflow.store.tracking.dbmodels.initial_models import Base\n"
        "Base.metadata.create_all(sqlalchemy.create_engine(os.environ['URL']))\n"
    ),
)
PREFECT = History("prefect", "prefect", "server/database/_migrations/versions/postgresql")


def build_environment(directory: Path) -> Path:
    """Create the histories' virtual environment in ``directory``; return its python."""
    venv.EnvBuilder(with_pip=True).create(directory)
    python = directory / "bin" / "python"
    from tests.wheel import snapshot  # .ci/run builds this beside `pip install -e .`, in the same tree

    source = snapshot(directory / "source")
    command = [
        str(python),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        str(source),
        *PACKAGES,
    ]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
    return python


def environment_python(directory: Path) -> Path:
    """The python of the environment CI built (once its build is done), else a new one in ``directory``."""
    given = os.environ.get(PYTHON_VARIABLE)
    return built(Path(given)) if given else build_environment(directory)


def built(python: Path) -> Path:
    """Wait, at most BUILD_SECONDS, for a background build of ``python``'s environment to end."""
    root = python.parent.parent
    deadline = time.monotonic() + BUILD_SECONDS
    while (root / BUILDING).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    if (root / FAILED).exists():
        raise RuntimeError(f"the histories' environment could not be built: {(root / FAILED).read_text()}")
    if (root / BUILDING).exists():
        raise TimeoutError(
            f"the histories' environment in {root} was still being built after {BUILD_SECONDS} s"
        )
    return python


def versions_folder(python: Path, history: History) -> Path:
    """Where the installed package keeps the history's revisions."""
    code = f"import {history.package}, os; print(os.path.dirname({history.package}.__file__))"
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True, timeout=120)
    return Path(out.stdout.strip()) / history.versions


def atsboost_project(python: Path, history: History, directory: Path) -> Path:
    """`atsboost-db migrate init` in ``directory``, with the history's revisions copied in unchanged."""
    run(python, ["-m", "atsboost", "migrate", "init", str(directory)], {}, directory.parent, check=True)
    for revision in versions_folder(python, history).glob("*.py"):
        shutil.copy2(revision, directory / "migrations" / "versions" / revision.name)
    return directory


def plain_project(python: Path, history: History, directory: Path, url: URL) -> Path:
    """`alembic init` (Alembic's generic env.py) over the same files: the history's and atsboost's."""
    directory.mkdir()
    run(python, ["-m", "alembic", "init", "alembic"], {}, directory, check=True)
    code = "import atsboost, os; print(os.path.dirname(atsboost.__file__))"
    packaged = Path(run(python, ["-c", code], {}, directory, check=True).stdout.strip())
    locations = [versions_folder(python, history), packaged / "migrations" / "versions"]
    ini = directory / "alembic.ini"
    text = ini.read_text().replace("path_separator = os", "path_separator = newline")
    text = text.replace(
        "sqlalchemy.url = driver://user:pass@localhost/dbname",
        "sqlalchemy.url = " + url.render_as_string(hide_password=False).replace("%", "%%"),
    )
    lines = "".join(f"\n    {location}" for location in locations)
    ini.write_text(text.replace("[alembic]\n", f"[alembic]\nversion_locations ={lines}\n", 1))
    return ini


def prepare(python: Path, history: History, url: URL) -> None:
    """Run what the history expects before its first revision."""
    if history.prepare:
        run(
            python,
            ["-c", history.prepare],
            {"URL": url.render_as_string(hide_password=False)},
            REPO,
            check=True,
        )


def run(
    python: Path,
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    *,
    check: bool = False,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run the environment's python with only ``env`` of atsboost's variables set."""
    ours = ("ATSBOOST_", "DATABASE_", "NODE_ENV", "MIGRATION_", "ADMIN_", "VIRTUAL_ENV", "PYTHONPATH")
    base = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    return subprocess.run(
        [str(python), *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


if __name__ == "__main__":  # .ci/run: python3 tests/histories.py DIR builds it there, in the background
    sys.path.insert(0, str(REPO))  # for tests.wheel
    folder = Path(sys.argv[1])
    (folder / BUILDING).touch()
    try:
        print(build_environment(folder))
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        (folder / FAILED).write_text(
            str(detail).strip().splitlines()[-1] if str(detail).strip() else repr(exc)
        )
        raise
    finally:
        (folder / BUILDING).unlink(missing_ok=True)
