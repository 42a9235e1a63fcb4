"""Hypothesis support: whole-program strategies run at native speed, and a state machine.

Needs ``hypothesis`` (``pip install 'rmapsim[test]'``). Two ways in:

**Programs** (fast: hypothesis generates and shrinks whole programs; the engine decodes and
runs each in one call)::

    from hypothesis import given
    from rmapsim.testing import programs

    @given(programs())
    def test_6_18_keeps_its_invariants(prog):
        prog.check("6.18", fail_rate=0.05, extended=True)

A :class:`Program` is a list of 64-bit words, one operation each, decoded the way the
native fuzzer draws operations (``rmapsim fuzz``) for the processes alive at that point;
the zero word is no operation, so shrinking a word to zero deletes it. :meth:`Program.check`
raises :class:`ProgramViolation` (an ``AssertionError``) whose message holds the program's
trace shrunk further by delta debugging, which ``rmapsim replay FILE --check`` reproduces.
:func:`op_arrays` and :func:`traces` give the decoded programs of an era as op arrays or
trace text for properties of your own (``sim.apply(arr)`` runs one in one call).

**The state machine** :class:`RmapMachine` (readable shrunk programs, ``v2 = fork(v1)``)::

    from rmapsim.testing import RmapMachine

    TestVariant = RmapMachine.for_era("6.0+fork_reuse=never").TestCase

Every rule is one trace line applied through the trace runner, so the trace it prints on a
failure replays exactly; structural checks run after every step and the full ``check()``
every ``FULL_CHECK_EVERY`` steps. ``ALLOWED`` lists invariant numbers a knowingly buggy era
may break.

The package: :mod:`.strategies` (programs, op arrays, traces, trace lines), :mod:`.machine`
(:class:`RmapMachine`), :mod:`.ops` (:func:`draw_op`, the one Python random-operation
generator, for harnesses that draw calls from a live state) and :mod:`.reference` (the
pure-Python reference model, also ``rmapsim.reference``). The names below load their
module on first use, so ``rmapsim.testing.reference`` works without hypothesis installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

if TYPE_CHECKING:  # the documented names, for type checkers (``ops`` is the submodule)
    from .machine import RmapMachine as RmapMachine
    from .strategies import WORDS_PER_BLOCK as WORDS_PER_BLOCK
    from .strategies import Program as Program
    from .strategies import ProgramViolation as ProgramViolation
    from .strategies import addresses as addresses
    from .strategies import lengths as lengths
    from .strategies import op_arrays as op_arrays
    from .strategies import programs as programs
    from .strategies import traces as traces

#: The names each module gives the package: the documented ones first, then the former
#: single module's other public names.
_NAMES = {
    "strategies": (
        "addresses",
        "lengths",
        "ops",
        "traces",
        "programs",
        "op_arrays",
        "Program",
        "ProgramViolation",
        "WORDS_PER_BLOCK",
        "BASE",
        "WINDOW_PAGES",
        "MAX_PROCS",
        "ADVICE",
        "ALL_ADVICE",
        "PROTS",
        "HEADER",
    ),
    "machine": ("RmapMachine", "PAGES"),
}
__all__ = [*_NAMES["strategies"][:9], "RmapMachine"]
_HOME: Dict[str, str] = {name: module for module, names in _NAMES.items() for name in names}
_SUBMODULES = ("strategies", "machine", "ops", "reference")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_HOME) | set(_SUBMODULES))
