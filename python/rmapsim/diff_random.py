"""The two-era differential over random traces (``rmapsim diff --random``,
:func:`diff_random`).

:func:`rmapsim.diff` compares two eras on one trace. This module asks the wider question a
new preset raises: *over many random traces, in what ways does era B behave differently from
era A, and which knob is each difference due to?*

1. ``traces`` random programs are drawn (trace ``i`` from the words of
   ``numpy.random.default_rng([seed, i])``) and decoded in era A by the native fuzzer's
   generator (:class:`rmapsim.testing.strategies.Program`), with the same operation mix and
   the same ``enomem N`` injection lines as ``rmapsim fuzz --fail-rate``.
2. Each trace is replayed in A and in B in lockstep and compared after every operation in
   every category of :mod:`rmapsim.diff` (result, object counts, the operation's allocations
   per site and frees, its locks and index updates, VMAs, anon_vma links, pages, walk cost,
   ``check()``), up to the first divergence.
3. **Attribution** (:func:`explain`). The knobs whose values differ between A and B are set
   on A one at a time, then two and three at a time, then all together (struct sizes, which
   no category compares, only in that last set; a combination the engine refuses is
   skipped): the first (smallest) set whose
   variant of A first diverges from A at the same operation *with exactly the same
   details* as B is what the difference is due to. Usually that is one knob. A set of
   several is *independent* when each of its knobs alone differs there and their details
   together are exactly B's (two changes that happen to show at one operation: a reusing
   fork that reuses another anon_vma *and* allocates first); otherwise it is an
   *interaction* (a change that only shows in combination with another). A knob that alone
   would differ there but whose effect B does not show (masked by another knob) is not
   counted. Setting every differing knob on A gives B's policy, so a trace even that does
   not reproduce is *unexplained*: behaviour that depends on a preset's name rather than
   its knobs, which would break "eras are data".
4. For each knob (and each interacting set), the first trace it explains is shrunk (delta
   debugging over its operations, renumbering processes when a ``fork`` goes, keeping "A
   and ``A+knob`` diverge") into a small reproducer.

The result lists, per knob, the diverging traces it explains and the categories in which it
differs there. Identical traces cost a full replay of every operation in both eras
(about 0.1 ms per operation and era for the generated sizes); only a diverging trace's
prefix is replayed again, once per knob set tried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .diff import _compare, _Run, _spec, _State
from .errors import InvalidArgument, short_repr
from .policy import Policy, knobs

#: Columns of :attr:`RandomDiffResult.rows`: one row per diverging trace.
COLUMNS = ("trace", "ops", "op", "operation", "categories", "knobs", "how")


@dataclass
class Finding:
    """One explanation: the knob set ``knobs`` (one knob, or several together) that alone
    reproduces the first divergence of ``traces`` diverging traces; ``categories`` counts
    those divergences per category (one can be in several); ``example``: the first such
    trace shrunk (delta debugging, keeping A and A+``knobs`` diverging; ``shrunk`` False:
    the trace up to its divergence), as trace text; ``variant``: the era spec of A with
    those knobs set to B's values (``rmapsim diff EXAMPLE --era A --era VARIANT``
    reproduces the difference); ``kernel``: each knob's kernel provenance."""

    knobs: Tuple[str, ...]
    kernel: Tuple[str, ...]
    traces: int = 0
    categories: Dict[str, int] = field(default_factory=dict)
    example: Optional[str] = None
    example_ops: int = 0
    variant: str = ""
    shrunk: bool = True

    @property
    def name(self) -> str:
        return "+".join(self.knobs)


@dataclass
class RandomDiffResult:
    """What :func:`diff_random` found: the two eras, the run's parameters, ``knobs``: each
    differing knob as (name, value in A, value in B), the operations compared, one row per
    diverging trace (:data:`COLUMNS`), the :class:`Finding` of every knob set that explains
    one or more (single knobs in knob order, then combinations), and the diverging traces
    nothing explains (``unexplained``, their numbers)."""

    a: str
    b: str
    traces: int
    length: int
    seed: int
    fail_rate: float
    extended: bool
    knobs: List[Tuple[str, str, str]]
    ops: int
    rows: List[Dict[str, Any]]
    findings: List[Finding]
    unexplained: List[int]

    @property
    def diverging(self) -> int:
        return len(self.rows)

    def finding(self, *knobs: str) -> Optional[Finding]:
        """The finding of exactly this knob set (in any order), or None."""
        want = set(knobs)
        return next((f for f in self.findings if set(f.knobs) == want), None)

    def as_records(self) -> List[Dict[str, Any]]:
        """JSON-ready records (``rmapsim diff --random --json``, one per line; fields in
        docs/output-schema.md): ``type`` ``"diff_random"`` (the summary), then one
        ``"diff_finding"`` per explaining knob set, then one ``"diff_trace"`` per diverging
        trace."""
        summary = {
            "type": "diff_random",
            "era_a": self.a,
            "era_b": self.b,
            "traces": self.traces,
            "length": self.length,
            "seed": self.seed,
            "fail_rate": self.fail_rate,
            "extended": self.extended,
            "knobs": [{"knob": k, "value_a": va, "value_b": vb} for k, va, vb in self.knobs],
            "ops": self.ops,
            "diverging": self.diverging,
            "unexplained": len(self.unexplained),
        }
        out: List[Dict[str, Any]] = [summary]
        for f in self.findings:
            out.append(
                {
                    "type": "diff_finding",
                    "knobs": list(f.knobs),
                    "kernel": list(f.kernel),
                    "variant": f.variant,
                    "traces": f.traces,
                    "categories": dict(f.categories),
                    "example_ops": f.example_ops,
                    "example": f.example,
                }
            )
        out.extend({"type": "diff_trace", **r} for r in self.rows)
        return out


def first_divergence(ops: np.ndarray, a: str, b: str) -> Optional[Tuple[int, Dict[str, List[str]]]]:
    """Replay the op array ``ops`` in era specs ``a`` and ``b`` in lockstep and stop at the
    first operation after which they differ: (that 1-based operation, the details per
    category, as in :class:`rmapsim.diff.Divergence`), or None when they never differ."""
    return _first_against(ops, _states(ops, a), b)


def _states(ops: np.ndarray, spec: str, keep: Optional[List[_State]] = None) -> Iterator[_State]:
    """The states of a replay of ``ops`` in ``spec``, one per operation, as they are made
    (each also appended to ``keep``)."""
    from . import trace as tr

    run = _Run(spec)
    for i, row in enumerate(tr.rows(ops)):
        st = run.step(row, i + 1)
        if keep is not None:
            keep.append(st)
        yield st


def _first_against(ops: np.ndarray, states_a: Iterable[_State], b: str) -> Optional[Tuple[int, Dict[str, List[str]]]]:
    """:func:`first_divergence` of a run whose states are ``states_a`` and a replay of
    ``ops`` in ``b``: A's states, taken once, serve every variant compared with them."""
    from . import trace as tr

    rb = _Run(b)
    for i, (row, sa) in enumerate(zip(tr.rows(ops), states_a)):
        details = _compare(sa, rb.step(row, i + 1))
        if details:
            return i + 1, details
    return None


def _differing_knobs(a: str, b: str) -> List[Tuple[str, str, str]]:
    pa, pb = Policy.parse(a).as_dict(), Policy.parse(b).as_dict()
    return [(k, pa[k], pb[k]) for k in pa if k != "name" and pa[k] != pb.get(k)]


def _check(name: str, v: object, lo: float, hi: float, integer: bool = True) -> None:
    kinds: Tuple[type, ...] = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, kinds) or not lo <= v <= hi:
        what = "an int" if integer else "a number"
        raise InvalidArgument(f"{name} must be {what} in [{lo:g}, {hi:g}], got {short_repr(v)}")


def random_trace(era: str, index: int, seed: int, length: int, fail_rate: float, extended: bool) -> np.ndarray:
    """Trace ``index`` of a :func:`diff_random` run: the generator's program from the words of
    ``default_rng([seed, index])``, decoded in ``era`` (an op array)."""
    from .testing.strategies import Program

    words = np.random.default_rng([seed, index]).integers(0, 2**63, length, dtype=np.uint64)
    return Program(words.astype("<u8").tobytes()).ops(
        era, fail_rate=fail_rate, extended=extended, seed=(seed + index) % 2**64
    )


def _shrink(ops: np.ndarray, a: str, variant: str) -> np.ndarray:
    """A 1-minimal sub-trace (delta debugging over operations) on which ``a`` and
    ``variant`` still diverge. Dropping a ``spawn`` or ``fork`` that made a process (in a
    replay in ``a``: a failed fork makes none) renumbers the later process symbols, and a
    candidate naming a dropped process is refused, so forks whose children do not matter go
    too; rounds repeat until nothing more goes. Every candidate is replayed, so the result
    diverges whatever the renumbering did."""
    from . import Simulator
    from . import trace as tr
    from .tools.kernel.fuzz import ddmin, renumber

    steps = [[ln] for ln in tr.format(ops).splitlines()[1:]]
    status = Simulator(era=a).apply(ops).status
    creates = [i for i, st in enumerate(steps) if st[0].split()[0] in ("spawn", "fork") and status[i] == 0]
    made = {i: n for n, i in enumerate(creates, 1)}
    best: Dict[Tuple[int, ...], np.ndarray] = {}

    def diverges(keep: List[int]) -> bool:
        cand = renumber(steps, keep, made)
        if cand is None:
            return False
        sub = tr.parse("# rmapsim trace v1\n" + "".join(c[0] + "\n" for c in cand))
        if first_divergence(sub, a, variant) is None:
            return False
        best[tuple(keep)] = sub
        return True

    keep = ddmin(len(steps), diverges, fixed=())
    small = best[tuple(keep)] if tuple(keep) in best or diverges(keep) else ops
    if len(small) < len(ops):  # renumbering opens new removals: again, to a fixed point
        return _shrink(small, a, variant)
    return small


@dataclass
class Explanation:
    """Why A and B first differ on one trace: after operation ``op`` with ``details``
    (category -> lines, as :class:`rmapsim.diff.Divergence`), due to ``knobs``; ``how`` is
    ``"one"`` (a single knob), ``"independent"`` (several knobs, each alone differing in
    its own part of ``details``, together exactly ``details``), ``"interaction"`` (only the
    knobs set together reproduce it) or ``"unexplained"`` (not even every differing knob
    set on A does: behaviour that depends on a preset's name; ``knobs`` empty). ``each``: for one or independent knobs, what each alone differs in."""

    op: int
    details: Dict[str, List[str]]
    knobs: Tuple[str, ...]
    how: str
    each: Dict[str, Dict[str, List[str]]] = field(default_factory=dict)


#: Knob sets are searched up to this size; beyond it only the set of every knob is tried.
MAX_SET = 3


class _Explainer:
    """The knob sets between eras A and B, and their variants of A (built when first
    tried; a combination the engine refuses is skipped)."""

    def __init__(self, a: str, b: str) -> None:
        self.a, self.b = a, b
        self.differing = _differing_knobs(a, b)
        self.names = tuple(k for k, _, _ in self.differing)
        self.value = {k: vb for k, _, vb in self.differing}
        # struct sizes change byte counts only, which no category compares: not searched
        self.searched = tuple(k for k in self.names if not k.startswith("size_"))
        self._variants: Dict[Tuple[str, ...], Optional[str]] = {}

    def sets(self) -> Iterator[Tuple[str, ...]]:
        """Every set of up to :data:`MAX_SET` searched knobs, smallest first, then every
        searched knob, then every knob (B's policy); each once."""
        seen = set()
        for n in range(1, min(MAX_SET, len(self.searched)) + 1):
            for c in combinations(self.searched, n):
                seen.add(c)
                yield c
        for c in (self.searched, self.names):
            if c and c not in seen:
                seen.add(c)
                yield c

    def rank(self, c: Tuple[str, ...]) -> Tuple[int, Tuple[int, ...]]:
        return len(c), tuple(self.names.index(k) for k in c)

    def variant(self, c: Tuple[str, ...]) -> Optional[str]:
        """A with the knobs ``c`` set to B's values (an era spec), or None when the engine
        refuses that combination (``swapin_target=root_unless_exclusive`` without
        ``track_root``, say)."""
        if c not in self._variants:
            from . import Simulator

            spec: Optional[str] = str(Policy.parse(self.a).replace(**{k: self.value[k] for k in c}))
            try:
                Simulator(era=spec)
            except InvalidArgument:
                spec = None
            self._variants[c] = spec
        return self._variants[c]

    def explain(self, ops: np.ndarray) -> Optional[Explanation]:
        states_a: List[_State] = []  # A's run up to the divergence, compared with every variant
        first = _first_against(ops, _states(ops, self.a, states_a), self.b)
        if first is None:
            return None
        at, details = first
        prefix = ops[:at]

        def against(c: Tuple[str, ...]) -> Optional[Tuple[int, Dict[str, List[str]]]]:
            spec = self.variant(c)
            return None if spec is None else _first_against(prefix, states_a, spec)

        for c in self.sets():
            if against(c) != first:
                continue
            if len(c) == 1:
                return Explanation(at, details, c, "one", {c[0]: details})
            each = {}
            for k in c:
                got = against((k,))
                if got is not None and got[0] == at:
                    each[k] = got[1]
            merged: Dict[str, set] = {}
            for d in each.values():
                for cat, lines in d.items():
                    merged.setdefault(cat, set()).update(lines)
            if set(each) == set(c) and merged == {cat: set(lines) for cat, lines in details.items()}:
                return Explanation(at, details, c, "independent", each)
            return Explanation(at, details, c, "interaction")
        return Explanation(at, details, (), "unexplained")


def explain(trace: Any, a: Union[str, Policy], b: Union[str, Policy]) -> Optional[Explanation]:
    """The first divergence of eras ``a`` and ``b`` on ``trace`` (text, path or op array, as
    :func:`rmapsim.diff`) and the knobs it is due to (:class:`Explanation`; the method is in
    :mod:`rmapsim.diff_random`), or None when the eras agree on every operation."""
    from .diff import _ops_and_lines

    ops, _ = _ops_and_lines(trace)
    return _Explainer(_spec(a, "a"), _spec(b, "b")).explain(ops)


def diff_random(
    a: Union[str, Policy],
    b: Union[str, Policy],
    traces: int = 200,
    seed: int = 0,
    length: int = 100,
    fail_rate: float = 0.0,
    extended: bool = True,
    shrink: bool = True,
    progress: Any = None,
    ignore: Sequence[str] = (),
) -> RandomDiffResult:
    """Compare eras ``a`` and ``b`` over ``traces`` random traces of ``length`` generated
    operations each and attribute every difference to the knobs that differ between them
    (the method is in :mod:`rmapsim.diff_random`). ``fail_rate`` in [0, 1] injects allocation
    failures as ``rmapsim fuzz --fail-rate`` does; ``extended`` uses the fuzzer's extended
    operation mix (mremap, madvise, mlock, ...). ``shrink``: shrink one example per finding.
    ``progress``: called as ``progress(done, total)`` after each trace. ``ignore``: knobs
    whose change is not looked at (B takes A's value of each), for a change that would mask
    the others at every first divergence (a new operation that A refuses). Bad arguments raise
    :class:`InvalidArgument` naming them; Ctrl-C raises ``KeyboardInterrupt``. Same
    arguments, same result."""
    from . import trace as tr

    spec_a, spec_b = _spec(a, "a"), _spec(b, "b")
    _check("traces", traces, 1, 10**7)
    _check("seed", seed, 0, 2**64 - 1)
    _check("length", length, 1, 10**5)
    _check("fail_rate", fail_rate, 0.0, 1.0, integer=False)
    for name, v in (("extended", extended), ("shrink", shrink)):
        if not isinstance(v, (bool, np.bool_)):
            raise InvalidArgument(f"{name} must be True or False, got {short_repr(v)}")
    if progress is not None and not callable(progress):
        raise InvalidArgument(f"progress must be a callable or None, got {short_repr(progress)}")
    if isinstance(ignore, str) or not isinstance(ignore, (list, tuple)) or not all(isinstance(k, str) for k in ignore):
        raise InvalidArgument(f"ignore must be a list of knob names, got {short_repr(ignore)}")
    if ignore:
        pa = Policy.parse(spec_a)
        try:
            spec_b = str(Policy.parse(spec_b).replace(**{k: pa[k] for k in ignore}))
            _spec(spec_b, "b")
        except InvalidArgument as e:
            raise InvalidArgument(f"ignore: {e}") from None
    provenance = {k.name: k.kernel for k in knobs()}
    ex = _Explainer(spec_a, spec_b)
    rows: List[Dict[str, Any]] = []
    unexplained: List[int] = []
    found: Dict[Tuple[str, ...], Finding] = {}
    examples: Dict[Tuple[str, ...], np.ndarray] = {}
    total = 0

    def credit(knobs_: Tuple[str, ...], details: Dict[str, List[str]], prefix: np.ndarray) -> None:
        f = found.setdefault(knobs_, Finding(knobs_, tuple(provenance.get(k, "") for k in knobs_)))
        f.traces += 1
        for c in details:
            f.categories[c] = f.categories.get(c, 0) + 1
        examples.setdefault(knobs_, prefix)

    for i in range(int(traces)):
        ops = random_trace(spec_a, i, int(seed), int(length), float(fail_rate), bool(extended))
        total += len(ops)
        e = ex.explain(ops)
        if e is not None:
            prefix = ops[: e.op]
            rows.append(
                {
                    "trace": i,
                    "ops": len(ops),
                    "op": e.op,
                    "operation": tr.format(ops[e.op - 1 : e.op]).splitlines()[-1],
                    "categories": "+".join(e.details),
                    "knobs": "+".join(e.knobs),
                    "how": e.how,
                }
            )
            if e.how == "unexplained":
                unexplained.append(i)
            elif e.how == "interaction":
                credit(e.knobs, e.details, prefix)
            else:
                for k, d in e.each.items():
                    credit((k,), d, prefix)
        if progress is not None:
            progress(i + 1, int(traces))
    findings = sorted(found.values(), key=lambda f: ex.rank(f.knobs))
    for f in findings:
        f.variant = ex.variant(f.knobs) or ""
        small = _shrink(examples[f.knobs], spec_a, f.variant) if shrink else examples[f.knobs]
        f.example, f.example_ops, f.shrunk = tr.format(small), len(small), shrink
    return RandomDiffResult(
        spec_a,
        spec_b,
        int(traces),
        int(length),
        int(seed),
        float(fail_rate),
        bool(extended),
        ex.differing,
        total,
        rows,
        findings,
        unexplained,
    )


def format_report(res: RandomDiffResult, examples: bool = True) -> str:
    """The text report of ``rmapsim diff --random``."""
    from ._text import render_table

    mix = "extended" if res.extended else "basic"
    how = {h: sum(r["how"] == h for r in res.rows) for h in ("one", "independent", "interaction")}
    out = [
        f"random differential: A = {res.a}, B = {res.b}: {res.traces} traces of {res.length} generated "
        f"operations ({mix} mix, fail rate {res.fail_rate:g}, seed {res.seed}), {res.ops} operations",
        "knobs that differ: " + (", ".join(f"{k} {va} -> {vb}" for k, va, vb in res.knobs) or "none"),
        f"diverging traces: {res.diverging} of {res.traces}: {how['one']} due to one knob, {how['independent']} to "
        f"several knobs independently, {how['interaction']} to an interaction of knobs, {len(res.unexplained)} unexplained",
    ]
    body = [
        [
            f.name,
            str(f.traces),
            ", ".join(f"{c} {n}" for c, n in sorted(f.categories.items(), key=lambda x: (-x[1], x[0]))),
        ]
        for f in res.findings
    ]
    seen = {k for f in res.findings for k in f.knobs}
    none = [k for k, _, _ in res.knobs if k not in seen and not k.startswith("size_")]
    if len(none) <= 8:
        body += [[k, "0", "-"] for k in none]
    if body:
        out += ["", render_table(["explained by", "traces", "first divergence in (traces per category)"], body, left=3)]
    if len(none) > 8:
        out.append(f"{len(none)} other knobs explain no first divergence")
    if res.unexplained:
        out.append("unexplained traces: " + " ".join(str(t) for t in res.unexplained[:50]))
    if examples:
        for f in res.findings:
            if f.example is not None:
                lines = [ln for ln in f.example.splitlines() if not ln.startswith("#")]
                what = "smallest example" if f.shrunk else "example, unshrunk"
                out += ["", f"{f.name}: {what} ({f.example_ops} operations; --era {res.a} --era {f.variant}):"]
                out += [f"    {ln}" for ln in lines]
    return "\n".join(out)
