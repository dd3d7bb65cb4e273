import subprocess
import sys
from pathlib import Path

from atsboost.config.cpus import cgroup_cpu_quota, usable_cpus


def fake_cgroup(tmp_path: Path, membership: str, files: dict[str, str]) -> tuple[Path, Path]:
    """Build a fake /sys/fs/cgroup tree and /proc/self/cgroup file."""
    root = tmp_path / "sys-fs-cgroup"
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(membership)
    return root, proc


def test_cgroup_v2_quota_limits_a_64_cpu_affinity_to_2(tmp_path):
    root, proc = fake_cgroup(tmp_path, "0::/kubepods/pod1\n", {"kubepods/pod1/cpu.max": "200000 100000\n"})
    assert usable_cpus(affinity=range(64), cgroup_root=root, proc_cgroup=proc) == 2


def test_cgroup_v2_without_a_quota_leaves_the_affinity(tmp_path):
    root, proc = fake_cgroup(tmp_path, "0::/app\n", {"app/cpu.max": "max 100000\n"})
    assert usable_cpus(affinity=range(8), cgroup_root=root, proc_cgroup=proc) == 8


def test_cgroup_v2_ancestor_quota_counts(tmp_path):
    root, proc = fake_cgroup(
        tmp_path,
        "0::/outer/inner\n",
        {"outer/cpu.max": "300000 100000\n", "outer/inner/cpu.max": "max 100000\n"},
    )
    assert cgroup_cpu_quota(cgroup_root=root, proc_cgroup=proc) == 3.0


def test_fractional_quota_rounds_up(tmp_path):
    root, proc = fake_cgroup(tmp_path, "0::/\n", {"cpu.max": "150000 100000\n"})
    assert usable_cpus(affinity=range(64), cgroup_root=root, proc_cgroup=proc) == 2


def test_cgroup_v1_quota(tmp_path):
    root, proc = fake_cgroup(
        tmp_path,
        "4:cpu,cpuacct:/docker/abc\n0::/\n",
        {
            "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "400000\n",
            "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        },
    )
    assert usable_cpus(affinity=range(64), cgroup_root=root, proc_cgroup=proc) == 4


def test_cgroup_v1_unlimited(tmp_path):
    root, proc = fake_cgroup(
        tmp_path,
        "1:cpu:/\n",
        {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
    )
    assert cgroup_cpu_quota(cgroup_root=root, proc_cgroup=proc) is None


def test_no_cgroup_information_means_no_limit(tmp_path):
    assert cgroup_cpu_quota(cgroup_root=tmp_path, proc_cgroup=tmp_path / "missing") is None


def test_real_affinity_of_one_cpu_is_respected():
    """Pin a real process to one CPU: usable_cpus and the production pool follow it."""
    code = (
        "import os; os.sched_setaffinity(0, {0});"
        "from atsboost.config.cpus import usable_cpus;"
        "from atsboost.config.settings import load_settings;"
        "s = load_settings({'ATSBOOST_ENV': 'production', 'DATABASE_URL': 'postgresql://h/db'});"
        "print(usable_cpus(), s.pool.size)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "3"]
