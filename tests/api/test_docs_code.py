"""Every Python block of README.md and docs/*.md type-checks under ``mypy --strict`` and runs,
so the docs cannot drift from the API or its types (tests/docblocks.py says which blocks are
Python). Doctest sessions run in tests/api/test_docs_doctests.py; the scripts run here; an
excerpt (``<!-- excerpt: PATH -->``) must be a verbatim part of its file, which is
type-checked here and run by a test that names it.

mypy runs once over all blocks, each written as its own module, padded with blank lines so
that mypy's line numbers are the markdown's, with a cache in a temporary directory (a cold
run: about 15 s on a loaded 2-core machine). A canary module in the same run holds the
mistakes the types exist to catch, so a run that checked nothing cannot pass."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple

import pytest

from docblocks import Block, python_blocks
from helpers import ROOT, TESTS

# Each line is a mistake mypy --strict must report (the README's walk columns, a typo'd
# advice and prot, a summary key that does not exist, a column of the wrong dtype).
CANARY = """\
import numpy as np
import numpy.typing as npt
import rmapsim

sim = rmapsim.Simulator()
p = sim.spawn()
a = sim.mmap(p, 4096)
stats = sim.rmap_walk()
u8: npt.NDArray[np.uint8] = stats.vmas_visited  # CANARY: uint32, not uint8
sim.madvise(p, a, 4096, "dontned")  # CANARY: no such advice
sim.mprotect(p, a, 4096, "rwr")  # CANARY: no such prot
stats.summary()["walk"]  # CANARY: the key is "walks"
sim.counts()["anon_vmas"]  # CANARY: the key is "anon_vma"
sim.rmap_walk(aggregate=True)["histogram"].append(1)  # CANARY: a dict, not a list
"""

MYPY_INI = """\
[mypy]
[mypy-distributed.*]
follow_imports = skip
[mypy-dask.*]
follow_imports = skip
"""

ERROR = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+): error: (?P<msg>.*)$", re.M)


def _module_path(block: Block, tmp: Path) -> Path:
    return block.excerpt_of if block.excerpt_of is not None else tmp / f"{block.module_name()}.py"


class MypyRun(NamedTuple):
    tmp: Path  # where the blocks' modules are
    errors: Dict[Path, List[str]]  # {module path: ["LINE: message", ...]}
    canary: List[str]  # the canary module's errors


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory) -> MypyRun:
    """One ``mypy --strict`` run over every block and the canary."""
    tmp = tmp_path_factory.mktemp("docs_mypy")
    files = []
    for b in python_blocks():
        path = _module_path(b, tmp)
        if b.excerpt_of is None:
            path.write_text("\n" * (b.line - 1) + b.source())
        files.append(path)
    (tmp / "canary.py").write_text(CANARY)
    # exactly --strict, except that Dask's own sources are not analysed (as Any they cost
    # nothing; analysed, 20 s more)
    (tmp / "mypy.ini").write_text(MYPY_INI)
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", "mypy.ini", "--cache-dir", str(tmp / "cache")]
        + ["--no-error-summary", "--show-error-codes", "--no-color-output", *map(str, sorted(set(files))), "canary.py"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode in (0, 1) and not r.stderr, r.stdout + r.stderr  # 2: mypy itself failed
    errors: Dict[Path, List[str]] = {}
    for m in ERROR.finditer(r.stdout):
        errors.setdefault((tmp / m["path"]).resolve(), []).append(f"{m['line']}: {m['msg']}")
    return MypyRun(tmp, errors, errors.pop((tmp / "canary.py").resolve(), []))


BLOCKS = python_blocks()


def test_the_docs_have_python_blocks_of_each_kind():
    kinds = {(b.is_session, b.excerpt_of is not None) for b in BLOCKS}
    assert kinds == {(True, False), (False, False), (False, True)}
    assert any(b.path.name == "README.md" for b in BLOCKS)


def test_mypy_reports_the_canary_mistakes(mypy_run):
    """The same run type-checks against rmapsim's real types: every canary line is an error
    (were the types Any, or the modules not checked, these would pass silently)."""
    want = {i + 1 for i, line in enumerate(CANARY.splitlines()) if "# CANARY" in line}
    got = {int(e.split(":", 1)[0]) for e in mypy_run.canary}
    assert got == want, mypy_run.canary


# Blocks of pages this branch may not edit, whose mypy errors are reported to their owner;
# strict: the test fails once they pass, and the entry goes.
NOT_YET: dict = {}


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(b, marks=pytest.mark.xfail(reason=NOT_YET[b.id], strict=True)) if b.id in NOT_YET else b
        for b in BLOCKS
    ],
    ids=[b.id for b in BLOCKS],
)
def test_block_type_checks_under_mypy_strict(block, mypy_run):
    errors = mypy_run.errors.get(_module_path(block, mypy_run.tmp).resolve(), [])
    where = (block.excerpt_of or block.path).relative_to(ROOT)
    assert not errors, "\n".join(f"{where}:{e}" for e in errors)


SCRIPTS = [b for b in BLOCKS if not b.is_session and b.excerpt_of is None]


@pytest.mark.parametrize("block", SCRIPTS, ids=[b.id for b in SCRIPTS])
def test_script_block_runs(block, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    code = compile("\n" * (block.line - 1) + block.source(), str(block.path), "exec")  # tracebacks: markdown lines
    try:
        exec(code, {"__name__": "__main__"})
    finally:
        plt.close("all")


EXCERPTS = [b for b in BLOCKS if b.excerpt_of is not None]


@pytest.mark.parametrize("block", EXCERPTS, ids=[b.id for b in EXCERPTS])
def test_excerpt_is_verbatim_and_its_file_runs_in_a_test(block):
    assert block.excerpt_of is not None and block.excerpt_of.is_file(), block.excerpt_of
    assert block.text in block.excerpt_of.read_text(), f"{block.id} is not a verbatim part of {block.excerpt_of}"
    rel = str(block.excerpt_of.relative_to(ROOT))
    runners = [p for p in TESTS.rglob("test_*.py") if p.name != Path(__file__).name and rel in p.read_text()]
    assert runners, f"no test runs {rel}"
