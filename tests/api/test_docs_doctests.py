"""Every interactive (``>>>``) block in README.md and docs/*.md is this build's real output:
each fenced block holding ``>>>`` lines runs as a doctest (tests/docblocks.py finds them;
tests/api/test_docs_code.py type-checks them)."""

from __future__ import annotations

import doctest

import pytest

from docblocks import blocks as doc_blocks


def blocks():
    for b in doc_blocks():
        if b.is_session:
            yield pytest.param(b.path, b.text, id=b.id)


@pytest.mark.parametrize("path,block", list(blocks()))
def test_block_is_real_output(path, block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    test = doctest.DocTestParser().get_doctest(block, {}, path.name, str(path), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_the_limits_section_has_a_checked_block():
    assert any("pid_max=400" in p.values[1] for p in blocks())
