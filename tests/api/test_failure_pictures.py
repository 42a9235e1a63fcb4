"""The suite's failure pictures (conftest.pytest_runtest_makereport, helpers.failure_pictures):
a failing test's report shows every process's address space of every Simulator it made, with
anon_vma labels global across the processes. Run for real: pytest in a child process on a
copy of this suite's conftest and helpers and a test that fails on purpose."""

from __future__ import annotations

import shutil
import subprocess
import sys

from helpers import TESTS

FAILING = """
import rmapsim

def test_fails_on_purpose():
    sim = rmapsim.Simulator(era="2.6.34", seed=0)
    p = sim.spawn()
    a = sim.mmap(p, 4 * 4096, prot="rw")
    sim.touch(p, a, 4 * 4096, write=True)
    c = sim.fork(p)
    sim.touch(c, a, 4096, write=True)
    other = rmapsim.Simulator(era="6.18", seed=0)
    other.spawn()
    handles = [int(sim.vmas(q)[0]["anon_vma"]) for q in (p, c)]
    print("HANDLES", *handles)
    assert False, "on purpose"

def test_passes():
    rmapsim.Simulator(era="2.6.34").spawn()
"""


def _run(tmp_path):
    for name in ("conftest.py", "helpers.py"):
        shutil.copy(TESTS / name, tmp_path / name)
    (tmp_path / "test_on_purpose.py").write_text(FAILING)
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rN", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    return r


def test_a_failing_test_prints_every_process_of_every_simulator(tmp_path):
    r = _run(tmp_path)
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    assert "1 failed, 1 passed" in out, out
    section = out[out.index("rmapsim address spaces") :]
    # both simulators, in order of creation; the first has the parent and the child
    assert "=== simulator 1 of 2: era 2.6.34, 2 process(es)" in section, section
    assert "=== simulator 2 of 2: era 6.18, 1 process(es)" in section, section
    assert section.count("pid 1: ") == 2 and section.count("pid 2: ") == 1, section
    # 2.6.34's fork: the child's VMA has its own anon_vma and the chain [parent's, own];
    # the parent's anon_vma is av0 in both pictures, the child's av1 (global labels)
    parent_h, child_h = (int(x) for x in out.split("HANDLES ")[1].split()[:2])
    first = section.split("=== simulator 2")[0]
    pid1, pid2 = first.split("pid 1: ")[1].split("pid 2: ")
    assert "anon_vma av0 chain [av0]" in pid1 and f"av0={parent_h:#x}" in pid1, pid1
    assert "anon_vma av1 chain [av0 av1]" in pid2, pid2
    assert f"av0={parent_h:#x} av1={child_h:#x}" in pid2, pid2
    # the passing test adds no section, and a passing run has none at all
    assert out.count("rmapsim address spaces") == 1, out
