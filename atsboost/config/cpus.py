"""How many CPUs this process may really use, for sizing the production pool.

``os.cpu_count()`` reports the host's CPUs. A container limited to 2 CPUs on a
64-core host must size its pool for 2, so the CPU affinity mask and any cgroup
CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``) on the process's cgroup or
its ancestors are taken into account.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")

_QuotaReader = Callable[[Path], float | None]


def usable_cpus(
    *,
    affinity: Collection[int] | None = None,
    cgroup_root: Path = CGROUP_ROOT,
    proc_cgroup: Path = PROC_SELF_CGROUP,
) -> int:
    """Return the number of CPUs this process can use: affinity, then cgroup quota."""
    if affinity is None:
        affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cpus = max(1, len(affinity))
    quota = cgroup_cpu_quota(cgroup_root=cgroup_root, proc_cgroup=proc_cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return cpus


def cgroup_cpu_quota(*, cgroup_root: Path, proc_cgroup: Path) -> float | None:
    """Return the tightest CPU quota (in CPUs) over the process's cgroups, or None."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            quotas += _walk(cgroup_root, path, _read_v2_quota)
        elif "cpu" in controllers.split(","):
            mount = cgroup_root / controllers
            if not mount.is_dir():
                mount = cgroup_root / "cpu"
            quotas += _walk(mount, path, _read_v1_quota)
    return min(quotas) if quotas else None


def _walk(mount: Path, path: str, read: _QuotaReader) -> list[float]:
    """Read a quota from the cgroup directory and every ancestor up to the mount."""
    found: list[float] = []
    directory = mount / path.lstrip("/")
    while True:
        quota = read(directory)
        if quota is not None:
            found.append(quota)
        if directory == mount or mount not in directory.parents:
            return found
        directory = directory.parent


def _read_v2_quota(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return _ratio(quota, period)


def _read_v1_quota(directory: Path) -> float | None:
    try:
        quota = (directory / "cpu.cfs_quota_us").read_text().strip()
        period = (directory / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:
        return None
    return q / p
