"""``rmapsim validate-kernel --fuzz``: random differential validation of an era against the
running kernel.

Each sequence (:mod:`.fuzzgen`) runs step by step on both sides: real processes of the
static driver ``kdriver/kserve.c`` (:class:`.live.LiveKernel`) and the simulator of the era
(:class:`.fuzzcmp.SimSide`); after every step both are observed and compared in every
dimension of :data:`.fuzzcmp.DIMENSIONS`. A sequence stops at its first differing step
(what follows would differ as a consequence). Every divergence is minimised by delta
debugging (:func:`ddmin` over the steps, re-running both sides; a candidate counts when
its first difference is at the same operation word and includes the same first
dimension), and saved as a replayable trace with both sides' view of the differing step.

The sides are objects with ``reset()`` and ``step(lines) -> Observation``, so the tests
run the whole machinery against a second simulator in place of the kernel
(:class:`SimAsKernel`).
"""

from __future__ import annotations

import json
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ... import Simulator, eras
from ...errors import SimError
from .fuzzcmp import DIMENSIONS, Observation, SimSide, compare, delta, describe, kernel_observation, kernel_result
from .fuzzgen import Generator, Step, trace_text

_SYM = re.compile(r"\bp(\d+)\b")


# ----------------------------------------------------------------------------- the sides


class KernelSide:
    """The live kernel as a side: runs each step's operation line (the mirror lines of
    ``spawn``/``exec`` only describe what the kernel does by itself)."""

    def __init__(self, live: Any) -> None:
        self.live = live

    def reset(self) -> None:
        self.live.reset()

    def step(self, lines: Sequence[str]) -> Observation:
        word = lines[0].split()[0]
        before = self.live.counts()
        value, err = self.live.run(lines[0])
        after = self.live.counts()
        obs = kernel_observation(kernel_result(word, value, err), self.live.observe(), str(self.live.workdir))
        obs.objects = None if word == "spawn" else delta(after, before)
        return obs


class SimulatorSide:
    """A simulator of ``spec`` as a side (all lines of each step)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.reset()

    def reset(self) -> None:
        self.side = SimSide(self.spec)
        self.mirror_errors: List[str] = []

    def step(self, lines: Sequence[str]) -> Observation:
        before = self.side.totals()
        result, bad = self.side.run(lines)
        self.mirror_errors += bad
        obs = self.side.observation(result)
        obs.objects = None if lines[0].split()[0] == "spawn" else delta(self.side.totals(), before)
        return obs


class SimAsKernel(SimulatorSide):
    """A simulator standing in for the kernel (tests, ``--fake-kernel``): another era, or
    ``plant(obs, lines)`` changing what it reports."""

    def __init__(self, spec: str, plant: Optional[Callable[[Observation, Sequence[str]], None]] = None) -> None:
        super().__init__(spec)
        self.plant = plant

    def step(self, lines: Sequence[str]) -> Observation:
        obs = super().step(lines)
        if self.plant is not None:
            self.plant(obs, lines)
        return obs


# ----------------------------------------------------------------------------- one sequence


@dataclass
class Outcome:
    """One sequence run on both sides: the dimensions that differ at each compared step
    (the last entry is the first difference, if any), and both observations there."""

    steps_compared: int
    diffs: List[List[str]]
    at: Optional[int] = None  # index of the first differing step
    kernel: Optional[Observation] = None
    sim: Optional[Observation] = None
    invalid: Optional[str] = None  # the sequence names a process that does not exist
    tolerated: int = 0  # kernel entries left out as fault-around (fuzzcmp.fault_around)

    @property
    def dims(self) -> List[str]:
        return self.diffs[-1] if self.at is not None else []


def run_pair(kernel: Any, sim: Any, steps: Sequence[Step]) -> Outcome:
    """Run ``steps`` on both sides (reset first) until the first difference."""
    kernel.reset()
    sim.reset()
    diffs: List[List[str]] = []
    tolerated = 0
    for i, step in enumerate(steps):
        try:
            k = kernel.step(step)
        except ValueError as e:  # a step naming a process that is not alive (ddmin candidates)
            return Outcome(i, diffs, invalid=str(e))
        s = sim.step(step)
        d, extra = compare(k, s)
        diffs.append(d)
        tolerated += extra
        if d:
            return Outcome(i + 1, diffs, i, k, s, tolerated=tolerated)
    return Outcome(len(steps), diffs, tolerated=tolerated)


def created_symbols(steps: Sequence[Step]) -> Dict[int, int]:
    """step index -> the process symbol it creates (``spawn``, ``fork``)."""
    out, nxt = {}, 1
    for i, s in enumerate(steps):
        if s[0].split()[0] in ("spawn", "fork"):
            out[i] = nxt
            nxt += 1
    return out


def renumber(steps: Sequence[Step], keep: Sequence[int], made: Optional[Dict[int, int]] = None) -> Optional[List[Step]]:
    """The steps ``keep`` (indices into ``steps``) with process symbols renumbered as the
    trace runner will number them; None if a kept step names a process whose creation
    was dropped. ``made``: step index -> the symbol it creates (default
    :func:`created_symbols`: every ``spawn`` and ``fork``; a caller that knows which forks
    failed passes its own)."""
    made = created_symbols(steps) if made is None else made
    new: Dict[int, int] = {}
    out: List[Step] = []
    for i in keep:
        lines = list(steps[i])
        sub = _rename(lines[0], new)
        if sub is None:
            return None
        if i in made:
            new[made[i]] = len(new) + 1
        rest = [_rename(x, new) for x in lines[1:]]
        if any(x is None for x in rest):
            return None
        out.append([sub, *[x for x in rest if x is not None]])
    return out


def _rename(line: str, new: Dict[int, int]) -> Optional[str]:
    bad = [m for m in _SYM.findall(line) if int(m) not in new]
    if bad:
        return None
    return _SYM.sub(lambda m: f"p{new[int(m.group(1))]}", line)


def ddmin(n: int, interesting: Callable[[List[int]], bool], fixed: Sequence[int] = (0,)) -> List[int]:
    """Zeller's delta debugging over the indices ``0..n-1`` (``fixed`` always kept): a
    1-minimal subset for which ``interesting`` holds, ``interesting(all)`` assumed. The
    subsets are tried in a fixed order, so the result is deterministic."""
    fixed = sorted(set(fixed))
    items = [i for i in range(n) if i not in fixed]
    chunks = 2
    while len(items) >= 2:
        size = -(-len(items) // chunks)
        parts = [items[j : j + size] for j in range(0, len(items), size)]
        reduced = False
        for part in parts:  # a part alone
            if interesting(sorted(fixed + part)):
                items, chunks, reduced = part, 2, True
                break
        if not reduced:
            for part in parts:  # the complement of a part
                rest = [x for x in items if x not in part]
                if len(parts) > 2 and interesting(sorted(fixed + rest)):
                    items, chunks, reduced = rest, max(chunks - 1, 2), True
                    break
                if len(parts) == 2 and interesting(sorted(fixed + rest)):
                    items, chunks, reduced = rest, 2, True
                    break
        if not reduced:
            if chunks >= len(items):
                break
            chunks = min(len(items), chunks * 2)
    if len(items) == 1 and interesting(sorted(fixed)):
        items = []
    return sorted(fixed + items)


def minimise(
    kernel: Any, sim: Any, steps: Sequence[Step], first: Outcome, valid: Optional[Callable[[List[Step]], bool]] = None
) -> Tuple[List[Step], Outcome]:
    """The smallest step list (ddmin) whose first difference is at an operation of the same
    word and includes the first dimension of ``first``'s; with its outcome. ``valid``:
    candidates it refuses are not run (the generator's rules, :meth:`.fuzzgen.Generator.valid`)."""
    assert first.at is not None
    word = steps[first.at][0].split()[0]
    dim = first.dims[0]
    upto = list(steps[: first.at + 1])
    best: Dict[Tuple[int, ...], Tuple[List[Step], Outcome]] = {}

    def interesting(keep: List[int]) -> bool:
        cand = renumber(upto, keep)
        if cand is None or (valid is not None and not valid(cand)):
            return False
        out = run_pair(kernel, sim, cand)
        ok = out.at is not None and cand[out.at][0].split()[0] == word and dim in out.dims
        if ok:
            best[tuple(keep)] = (cand[: out.at + 1], out)
        return ok

    keep = ddmin(len(upto), interesting, fixed=())
    if tuple(keep) not in best and not interesting(keep):
        return upto, first
    cand, out = best[tuple(keep)]
    return cand, out


# ----------------------------------------------------------------------------- the run


@dataclass
class DimCount:
    seq_agree: int = 0
    seq_diverge: int = 0
    ops_agree: int = 0
    ops_diverge: int = 0


@dataclass
class Report:
    era: str
    kernel: str
    seed: int
    ops: Tuple[int, int]
    holes: str
    sequences: int = 0
    steps: int = 0
    fault_around: int = 0
    dims: Dict[str, DimCount] = field(default_factory=lambda: {d: DimCount() for d in DIMENSIONS})
    divergences: List[Dict[str, Any]] = field(default_factory=list)
    classes: Dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    notes: List[str] = field(default_factory=list)

    def add(self, out: Outcome) -> None:
        self.sequences += 1
        self.steps += out.steps_compared
        self.fault_around += out.tolerated
        for d in DIMENSIONS:
            c = self.dims[d]
            bad = sum(d in x for x in out.diffs)
            c.ops_diverge += bad
            c.ops_agree += len(out.diffs) - bad
            if bad:
                c.seq_diverge += 1
            else:
                c.seq_agree += 1

    def summary(self) -> Dict[str, Any]:
        return {
            "type": "summary",
            "era": self.era,
            "kernel": self.kernel,
            "seed": self.seed,
            "ops": list(self.ops),
            "holes": self.holes,
            "sequences": self.sequences,
            "steps": self.steps,
            "diverging_sequences": len(self.divergences),
            "fault_around_entries": self.fault_around,
            "dimensions": {d: vars(c) for d, c in self.dims.items()},
            "classes": self.classes,
            "seconds": round(self.seconds, 3),
            "sequences_per_second": round(self.sequences / self.seconds, 2) if self.seconds else None,
            "notes": self.notes,
        }


def class_of(steps: Sequence[Step], out: Outcome) -> str:
    """A divergence's class: the operation word (with an mmap/madvise/mremap detail) and
    the dimensions that differ at the first differing step."""
    assert out.at is not None
    tok = steps[out.at][0].split()
    word = tok[0]
    if word == "madvise":
        word += f" {tok[4]}"
    elif word == "mremap":
        word += " " + ("move" if "move" in tok else "nomove") + (" dontunmap" if "dontunmap" in tok else "")
    elif word in ("mmap", "mlock", "mlockall"):
        word += "".join(f" {t}" for t in tok[2:] if t in ("file", "locked", "noreplace", "stack", "onfault", "future"))
    return f"{word}: {'+'.join(out.dims)}"


def save(out_dir: Path, n: int, steps: Sequence[Step], out: Outcome, spec: str, header: Sequence[str]) -> Path:
    """Write a divergence as a trace ``rmapsim replay`` reads, both sides in comments."""
    assert out.at is not None and out.kernel is not None and out.sim is not None
    sides = [x.rstrip() for x in describe(out.kernel, out.sim, out.dims)]
    # the version line, the comments (era, header, this line, both sides), the steps before
    line_no = 1 + 1 + len(header) + 1 + len(sides) + sum(len(s) for s in steps[: out.at]) + 1
    first = f"first difference at trace line {line_no}: {steps[out.at][0]}  ({', '.join(out.dims)})"
    lines = [f"era {spec}", *header, first, *sides]
    path = out_dir / f"divergence-{n:04d}.trace"
    path.write_text(trace_text(steps, lines))
    return path


def kernel_era(release: str, known: Optional[Sequence[str]] = None) -> str:
    """The newest era preset not newer than kernel ``release`` (``6.18.44-x`` -> ``6.18``)."""

    def version(s: str) -> Tuple[int, ...]:
        m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?(-rc\d+)?", s)
        if not m:
            return (0,)
        return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), -1 if m.group(4) else 0)

    have = list(known or eras())
    mine = version(release)
    older = [e for e in have if version(e) <= mine]
    return max(older, key=version) if older else have[0]


def holes_spec(era: str) -> Tuple[str, bool]:
    """``era+holes=kernel`` when the installed rmapsim has the knob, else ``era``; and which."""
    try:
        Simulator(f"{era}+holes=kernel")
    except SimError:
        return era, False
    return f"{era}+holes=kernel", True


def fuzz(
    kernel: Any,
    image: Any,
    n: int,
    seed: int,
    ops: Tuple[int, int],
    spec: str,
    holes: bool,
    release: str = "",
    out_dir: Optional[Path] = None,
    saved_per_class: int = 3,
    progress: Optional[Callable[[str], None]] = None,
    emit: Optional[Callable[[Dict[str, Any]], None]] = None,
    every: float = 5.0,
    have: Optional[frozenset] = None,
) -> Report:
    """Run ``n`` sequences on ``kernel`` (a side) and the simulator of ``spec``; minimise
    and save divergences (up to ``saved_per_class`` per :func:`class_of`); ``emit`` gets
    one JSON-able record per divergence. Returns the :class:`Report`."""
    rep = Report(spec, release or f"live kernel {platform.release()}", seed, ops, "kernel" if holes else "strict")
    if not holes:
        rep.notes.append("no kernel-exact holes mode in this rmapsim: no operation was generated over a hole")
    gen = Generator(spec, image, seed, ops, have=have, holes=holes)
    sim = SimulatorSide(spec)
    t0 = last = time.monotonic()
    for i in range(n):
        steps = gen.sequence()
        out = run_pair(kernel, sim, steps)
        rep.add(out)
        if sim.mirror_errors:
            rep.notes.append(f"sequence {i}: mirror lines failed in the simulator: {sim.mirror_errors[:2]}")
        if out.at is not None:
            _divergence(rep, kernel, sim, steps, out, i, (spec, gen.valid), out_dir, saved_per_class, emit)
        now = time.monotonic()
        if progress and now - last >= every:
            last = now
            progress(
                f"validate-kernel --fuzz: {i + 1}/{n} sequences, {len(rep.divergences)} diverging, "
                f"{(i + 1) / (now - t0):.1f} sequences/s"
            )
    kernel.reset()
    rep.seconds = time.monotonic() - t0
    return rep


def _divergence(
    rep: Report,
    kernel: Any,
    sim: Any,
    steps: List[Step],
    out: Outcome,
    i: int,
    rules: Tuple[str, Callable[[List[Step]], bool]],
    out_dir: Optional[Path],
    saved_per_class: int,
    emit: Optional[Callable[[Dict[str, Any]], None]],
) -> None:
    cls = class_of(steps, out)
    rep.classes[cls] = rep.classes.get(cls, 0) + 1
    rec: Dict[str, Any] = {
        "type": "divergence",
        "sequence": i,
        "class": cls,
        "step": out.at,
        "operation": steps[out.at][0] if out.at is not None else None,
        "dimensions": out.dims,
        "steps": len(steps),
    }
    spec, valid = rules
    if rep.classes[cls] <= saved_per_class:
        small, sout = minimise(kernel, sim, steps, out, valid)
        rec["minimised_steps"] = len(small)
        rec["minimised_operation"] = small[sout.at][0] if sout.at is not None else None
        if out_dir is not None and sout.at is not None:
            header = [
                f"validate-kernel --fuzz: {rep.kernel}, seed {rep.seed}, sequence {i}, "
                f"minimised from {len(steps)} to {len(small)} steps; class {cls}",
            ]
            rec["trace"] = str(save(out_dir, len(rep.divergences) + 1, small, sout, spec, header))
        if sout.kernel is not None and sout.sim is not None:
            rec["kernel_view"] = describe(sout.kernel, sout.sim, sout.dims)
    rep.divergences.append(rec)
    if emit:
        emit(rec)


def format_report(rep: Report) -> str:
    """The text report: per dimension, sequences and operations agreeing / diverging."""
    s = rep.summary()
    lines = [
        f"{s['kernel']} vs era {s['era']} (holes: {s['holes']}): {s['sequences']} sequences "
        f"of {s['ops'][0]}-{s['ops'][1]} operations, seed {s['seed']}, {s['steps']} operations compared",
        f"{'dimension':<10} {'sequences agree':>16} {'diverge':>8} {'operations agree':>17} {'diverge':>8}",
    ]
    for d, c in rep.dims.items():
        lines.append(f"{d:<10} {c.seq_agree:>16} {c.seq_diverge:>8} {c.ops_agree:>17} {c.ops_diverge:>8}")
    lines.append(
        f"diverging sequences: {len(rep.divergences)} of {rep.sequences}; run time {rep.seconds:.1f} s "
        f"({s['sequences_per_second'] or 0:.1f} sequences/s)"
    )
    for cls, count in sorted(rep.classes.items(), key=lambda x: (-x[1], x[0])):
        ex = next((d for d in rep.divergences if d["class"] == cls and "trace" in d), None)
        lines.append(f"  {count:>5} x {cls}" + (f"  (e.g. {ex['trace']})" if ex else ""))
    lines += [f"note: {x}" for x in rep.notes[:10]]
    return "\n".join(lines)


def json_lines(rep: Report) -> str:
    return json.dumps(rep.summary())
