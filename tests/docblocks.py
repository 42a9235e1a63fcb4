"""The fenced code blocks of README.md and docs/*.md, for the tests that keep the docs true:
tests/api/test_docs_doctests.py runs the ``>>>`` sessions, tests/api/test_docs_code.py
type-checks every Python block and runs the scripts (the rules for writers: docs/types.md,
"Code in the docs").

A block is Python when its fence says ``python``, ``py`` or ``pycon``, or when it holds ``>>>``
prompts; then it is a doctest session (prompts) or a script (no prompts). An API synopsis
(signatures with placeholder arguments, ``-> type`` notes) is not Python and is fenced
``text``. A block right after the line ``<!-- excerpt: PATH -->`` is an excerpt of the
repository's file PATH: the tests check that it is one, and type-check and run the file.
"""

from __future__ import annotations

import doctest
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

from helpers import ROOT

FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
EXCERPT = re.compile(r"<!-- excerpt: (\S+) -->\n\Z")
PYTHON_LANGS = frozenset({"python", "py", "pycon"})


def doc_files() -> List[Path]:
    """README.md and every page of docs/, in a fixed order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    path: Path
    index: int  # among the fenced blocks of its file
    line: int  # the markdown line (1-based) of the block's first line
    lang: str
    text: str
    excerpt_of: Optional[Path] = None  # the file the block is an excerpt of

    @property
    def id(self) -> str:
        return f"{self.path.name}#{self.index}"

    @property
    def is_session(self) -> bool:
        return ">>> " in self.text

    @property
    def is_python(self) -> bool:
        return self.lang in PYTHON_LANGS or self.is_session

    def source(self) -> str:
        """The Python the block runs, line for line: a session's examples at their own lines
        (prompts stripped, output lines blank), so line n of the source is line n of the block."""
        if not self.is_session:
            return self.text
        lines = [""] * (self.text.count("\n") + 1)
        for ex in doctest.DocTestParser().get_examples(self.text):
            for k, src in enumerate(ex.source.splitlines()):
                lines[ex.lineno + k] = src
        return "\n".join(lines) + "\n"

    def module_name(self) -> str:
        """A module name for the block's source (``doc_README_3``)."""
        return "doc_" + re.sub(r"\W", "_", self.path.stem) + f"_{self.index}"


def blocks() -> Iterator[Block]:
    """Every fenced block of the docs."""
    for path in doc_files():
        text = path.read_text()
        for i, m in enumerate(FENCE.finditer(text)):
            line = text.count("\n", 0, m.start(2)) + 1
            ex = EXCERPT.search(text, 0, m.start())
            yield Block(path, i, line, m.group(1), m.group(2), ROOT / ex.group(1) if ex else None)


def python_blocks() -> List[Block]:
    return [b for b in blocks() if b.is_python]
