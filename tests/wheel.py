"""A fresh virtualenv with atsboost installed from a freshly built wheel, as a team installs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # no test helper imported: tests/histories.py runs bare


def install_wheel(root: Path, *, extras: str = "", packages: tuple[str, ...] = ()) -> Path:
    """Build the wheel into ``root``, install it (with ``extras`` and ``packages``) in a new venv there.

    Return the venv's bin folder. Nothing of the checkout is on the venv's path.
    """
    source = snapshot(root / "source")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(source)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    [wheel] = (root / "dist").glob("atsboost-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    requirement = f"atsboost[{extras}] @ {wheel.as_uri()}" if extras else str(wheel)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", requirement, *packages]
    subprocess.run(pip, check=True, capture_output=True, timeout=600)
    return venv / "bin"


def snapshot(folder: Path) -> Path:
    """Copy the checkout's sources to ``folder``: setuptools builds in the source tree
    (``build/``, ``*.egg-info``), so two builds from the checkout at once race."""
    skip = shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__", "bench-results")
    shutil.copytree(REPO, folder, ignore=skip)
    return folder


def shell(
    installed: Path, folder: Path, environ: dict[str, str]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Return ``run(*args, cwd=folder, **variables)``: a command of the installed package, as a team runs it.

    Only the installed venv's bin and the system's are on PATH; ``variables`` add to ``environ``.
    """
    base = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR")}
    env = {**base, **environ, "PATH": f"{installed}:/usr/bin:/bin"}

    def run(*args: str, cwd: Path = folder, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=cwd, env={**env, **extra}, capture_output=True, text=True, timeout=120, check=False
        )

    return run
