"""The CPU limit of a container, as cgroup v2 and v1 state it."""

import os
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.core.cpus import available_cpus, cgroup_cpu_limit


def cgroup_v2(root: Path, cpu_max: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cpu.max").write_text(cpu_max + "\n")
    return root


def cgroup_v1(root: Path, quota: int, period: int = 100_000) -> Path:
    (root / "cpu").mkdir(parents=True, exist_ok=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(f"{period}\n")
    return root


@pytest.mark.parametrize(
    ("make", "limit"),
    [
        (lambda root: cgroup_v2(root, "150000 100000"), 1.5),
        (lambda root: cgroup_v2(root, "max 100000"), None),
        (lambda root: cgroup_v1(root, 50_000), 0.5),
        (lambda root: cgroup_v1(root, -1), None),
        (lambda root: root, None),
    ],
    ids=["v2-limit", "v2-none", "v1-limit", "v1-none", "no-cgroup"],
)
def test_the_cpu_limit_is_read_from_either_cgroup_version(
    make: object, limit: float | None, tmp_path: Path
) -> None:
    root = make(tmp_path / "cgroup")  # type: ignore[operator]
    assert cgroup_cpu_limit(root) == limit


def test_available_cpus_rounds_a_limit_up_and_never_exceeds_the_cpus(tmp_path: Path) -> None:
    usable = len(os.sched_getaffinity(0))
    assert available_cpus(cgroup_v2(tmp_path / "half", "50000 100000")) == 1
    assert available_cpus(cgroup_v2(tmp_path / "many", "6400000 100000")) == usable
    assert available_cpus(cgroup_v2(tmp_path / "none", "max 100000")) == usable
