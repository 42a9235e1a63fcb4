"""Every interactive (``>>>``) block in README.md and docs/*.md is this build's real output:
each fenced block holding ``>>>`` lines runs as a doctest."""

from __future__ import annotations

import doctest
import re

import pytest

from helpers import ROOT

FENCE = re.compile(r"^```[a-z]*\n(.*?)^```[ \t]*$", re.S | re.M)


def blocks():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, m in enumerate(FENCE.finditer(path.read_text())):
            if ">>> " in m.group(1):
                yield pytest.param(path, m.group(1), id=f"{path.name}#{i}")


@pytest.mark.parametrize("path,block", list(blocks()))
def test_block_is_real_output(path, block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    test = doctest.DocTestParser().get_doctest(block, {}, path.name, str(path), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_the_limits_section_has_a_checked_block():
    assert any("pid_max=400" in p.values[1] for p in blocks())
