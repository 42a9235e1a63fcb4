"""The random operation sequences of ``validate-kernel --fuzz``, as trace text.

A sequence is a list of *steps*; a step is one operation of the trace (one line) plus,
for ``spawn`` and ``exec``, the lines that mirror the driver's own image into the
simulator (:func:`image_lines`), which belong to it: delta debugging removes or keeps a
step whole. Operations are drawn against a shadow :class:`rmapsim.Simulator` of the era
compared, so ranges mostly fall on the VMAs that exist (splits, merges, partial
overlaps, neighbours of the same file or prot), in a window of :data:`WINDOW` pages at
:data:`REGION`, far from the driver's own mappings.

Which operations are drawn depends on what the installed rmapsim knows: an operation,
mmap flag or advice is in the mix only when a trace line using it parses
(:func:`features`), so operations added to the trace format later join by themselves.

The same seed, bounds, features and image give the same sequences (one
``random.Random(seed)`` for the run; each sequence draws from it in turn).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from ... import Simulator
from ...errors import SimError
from .live import PAGE, KVma

#: The fuzzed window: WINDOW pages at REGION (a private range far from the driver's own
#: mappings: the static image at 0x400000, its heap, [vvar]/[vdso] and the stack near
#: 0x7ffff7ff7000..0x7ffffffff000).
REGION = 0x200000000000
WINDOW = 64
REGION_END = REGION + WINDOW * PAGE
#: The range whose VMAs and pages are compared as the region's (mremap may grow a VMA
#: past the window); everything outside it is the driver's own.
OBSERVED = (REGION, REGION + (1 << 32))
#: File identities the fuzzer maps (``f1``..``f3`` in the driver's working directory) and
#: the page offsets it uses in them (files are FILE_PAGES long, so no access is past EOF).
FILES = (1, 2, 3)
FILE_OFFSET_PAGES = 256
FILE_PAGES = 1024
#: File identities of the driver's own file-backed mappings in the mirror.
IMAGE_FILE = 1001
SPECIAL_FILES = {"[vvar]": 1002, "[vvar_vclock]": 1003, "[vdso]": 1004}
MAX_PROCS = 5
PROTS = ("rw", "rw", "rw", "r", "none", "rwx", "rx")
MPROTECT_PROTS = ("r", "rw", "rw", "none", "rwx", "rx")
#: Advice drawn (when the installed rmapsim knows it), repeated to weight them.
ADVICE = (
    "dontneed",
    "dontneed",
    "pageout",
    "pageout",
    "pageout",
    "free",
    "free",
    "normal",
    "random",
    "sequential",
    "dontfork",
    "dofork",
    "wipeonfork",
    "keeponfork",
    "hugepage",
    "nohugepage",
    "dontdump",
    "dodump",
    "mergeable",
    "unmergeable",
)
#: Operation kinds and weights (kinds the installed rmapsim lacks are dropped).
KINDS: Dict[str, int] = {
    "fork": 5,
    "exit": 2,
    "exec": 1,
    "spawn": 1,
    "mmap": 10,
    "munmap": 5,
    "mprotect": 8,
    "madvise": 9,
    "mremap": 6,
    "touch": 16,
    "brk": 3,
    "mlock": 3,
    "munlock": 2,
    "mlockall": 1,
    "munlockall": 1,
    "memory_merge": 1,
}
#: A line of each optional feature; it is available when the installed trace parser takes it.
_PROBES: Dict[str, str] = {
    "mlock": "mlock p1 0x1000 0x1000",
    "mlock_onfault": "mlock p1 0x1000 0x1000 onfault",
    "munlock": "munlock p1 0x1000 0x1000",
    "mlockall": "mlockall p1 current",
    "munlockall": "munlockall p1",
    "memory_merge": "memory_merge p1 on",
    "map_locked": "mmap p1 0x1000 0x1000 rw locked",
    "map_noreplace": "mmap p1 0x1000 0x1000 rw noreplace",
    "mremap_dontunmap": "mremap p1 0x1000 0x1000 0x1000 move 0x9000 dontunmap",
}


def _parses(line: str) -> bool:
    from ... import trace

    try:
        trace.parse(f"# rmapsim trace v1\nspawn\n{line}\n")
    except SimError:
        return False
    return True


def features() -> FrozenSet[str]:
    """The optional operations, flags (``map_locked`` ...) and advice (``advice:free`` ...)
    the installed rmapsim's trace format knows."""
    have = {name for name, line in _PROBES.items() if _parses(line)}
    have |= {f"advice:{a}" for a in set(ADVICE) if _parses(f"madvise p1 0x1000 0x1000 {a}")}
    return frozenset(have)


@dataclass
class Image:
    """The driver's own address space right after it starts (from a live process): its
    VMAs, the heap's start (``start_brk``) and end (``brk``)."""

    vmas: List[KVma]
    start_brk: int
    brk: int
    anon_kb: Dict[int, int] = field(default_factory=dict)  # VMA start -> Anonymous kB


def image_lines(img: Image, sym: int, merge_any: bool = False) -> List[str]:
    """Trace lines that build the driver's own mappings in process ``p<sym>`` (after
    ``spawn`` or ``exec``), as :func:`.predict.mirror` does, with the heap made by
    ``brkbase``/``brk`` so later ``brk`` operations act on it; ``[vvar]``,
    ``[vvar_vclock]`` and ``[vdso]`` are never-written file mappings of their own identity
    (``dontdump`` where the kernel sets VM_DONTDUMP). ``merge_any``: the process execs with
    PR_SET_MEMORY_MERGE on (exec keeps MMF_VM_MERGE_ANY), so the mirror's mmaps get
    VM_MERGEABLE as the loader's do, but the stack exec builds itself (6.18
    ``create_init_stack_vma``, mm/vma_exec.c 107-161: its flags set directly, no
    ``ksm_vma_flags``) has none: its mmap is followed by ``madvise ... unmergeable``."""
    p = f"p{sym}"
    out: List[str] = []
    vmas = img.vmas
    i = 0
    while i < len(vmas):
        v = vmas[i]
        anon = img.anon_kb.get(v.start, 0) > 0
        if v.path == "[heap]":
            out += [f"brkbase {p} {img.start_brk:#x}", f"brk {p} {img.brk:#x}"]
            if anon:
                out.append(f"touch {p} {v.start:#x} {PAGE:#x} w")
            i += 1
            continue
        group = [v]
        if v.path.startswith("/") and anon:
            while i + len(group) < len(vmas):
                nxt, last = vmas[i + len(group)], group[-1]
                if not (
                    nxt.path == v.path
                    and nxt.start == last.end
                    and img.anon_kb.get(nxt.start, 0) > 0
                    and nxt.offset == last.offset + (last.end - last.start)
                ):
                    break
                group.append(nxt)
        start, end = group[0].start, group[-1].end
        prot = "rw" if len(group) > 1 else (v.prot or "none")
        fid = IMAGE_FILE if v.path.startswith("/") else SPECIAL_FILES.get(v.path)
        tail = f" file {fid} {v.offset:#x}" if fid is not None else ""
        out.append(f"mmap {p} {start:#x} {end - start:#x} {prot}{tail}")
        if anon:
            out.append(f"touch {p} {start:#x} {PAGE:#x} w")
        if len(group) > 1:
            out += [f"mprotect {p} {g.start:#x} {g.end - g.start:#x} {g.prot or 'none'}" for g in group]
        if "dd" in v.flags:
            out.append(f"madvise {p} {start:#x} {end - start:#x} dontdump")
        if merge_any and v.path == "[stack]":
            out.append(f"madvise {p} {start:#x} {end - start:#x} unmergeable")
        i += len(group)
    return out


Step = List[str]
#: Operations with an address range (``WORD pN ADDR LEN ...``).
RANGE_WORDS = frozenset({"munmap", "mprotect", "madvise", "touch", "mlock", "munlock", "mremap"})
#: Advice the kernel refuses for some VMAs (locked, file-backed, special) with EINVAL.
FAILABLE_ADVICE = frozenset({"dontneed", "free", "pageout", "cold", "wipeonfork"})


class Generator:
    """Draws sequences; see the module docstring. ``spec``: the era spec the shadow
    simulator runs; ``holes``: whether ranges may cross unmapped pages (only in the
    kernel-exact holes mode); ``ops``: (min, max) operations per sequence."""

    def __init__(
        self,
        spec: str,
        img: Image,
        seed: int,
        ops: Tuple[int, int] = (10, 40),
        have: Optional[FrozenSet[str]] = None,
        holes: bool = False,
    ) -> None:
        self.spec, self.img, self.ops, self.holes = spec, img, ops, holes
        self.rng = random.Random(seed)
        self.have = features() if have is None else have
        optional = {"mlock", "munlock", "mlockall", "munlockall", "memory_merge"}
        self.kinds = [k for k, w in KINDS.items() for _ in range(w) if k not in optional or k in self.have]
        self.advice = [a for a in ADVICE if f"advice:{a}" in self.have]

    # ------------------------------------------------------------------ one sequence

    def sequence(self) -> List[Step]:
        """The next sequence: ``spawn`` and its image, then ops[0]..ops[1] operations."""
        sim = Simulator(self.spec)
        self.sim, self.syms, self.live = sim, [], []
        steps: List[Step] = []
        self._apply(steps, self._spawn())
        for _ in range(self.rng.randint(*self.ops)):
            step = self._draw()
            self._apply(steps, step)
        return steps

    def _apply(self, steps: List[Step], step: Step) -> None:
        from ... import trace

        status, _v, _m, self.syms = self.sim._apply_from(trace.rows(trace.parse(_text(step))), self.syms)
        live = {int(p) for p in self.sim.pids()}
        self.live = [i + 1 for i, pid in enumerate(self.syms) if pid in live]
        steps.append(step)

    def _spawn(self) -> Step:
        sym = len(self.syms) + 1
        return ["spawn", *image_lines(self.img, sym)]

    def _vmas(self, sym: int) -> List[Dict]:
        pid = self.syms[sym - 1]
        return [v for v in self.sim.vmas(pid) if REGION <= v["start"] < REGION_END]

    def _draw(self) -> Step:
        r = self.rng
        if not self.live:
            return self._spawn()
        for _ in range(50):
            kind = r.choice(self.kinds)
            step = self._make(kind, r.choice(self.live))
            if step is not None:
                return step
        return (
            [f"touch p{self.live[0]} {REGION:#x} {PAGE:#x} r"]
            if self._covered(self.live[0], REGION, PAGE)
            else self._spawn()
        )

    def _make(self, kind: str, sym: int) -> Optional[Step]:
        r, p = self.rng, f"p{sym}"
        if kind == "fork":
            return [f"fork {p}"] if len(self.live) < MAX_PROCS else None
        if kind == "exit":
            return [f"exit {p}"]
        if kind == "exec":
            merge_any = self.sim.memory_merge(self.syms[sym - 1])
            return [f"exec {p}", *image_lines(self.img, sym, merge_any)]
        if kind == "spawn":
            return self._spawn() if len(self.live) < MAX_PROCS else None
        if kind == "mmap":
            return [self._mmap(sym)]
        if kind == "brk":
            lo = self.img.start_brk + 4 * PAGE
            return [f"brk {p} {lo + r.randint(0, 60) * PAGE:#x}"]
        if kind == "mlockall":
            words = r.choice(
                [["current"], ["future"], ["current", "future"], ["current", "onfault"], ["future", "onfault"]]
            )
            return [f"mlockall {p} {' '.join(words)}"]
        if kind == "munlockall":
            return [f"munlockall {p}"]
        if kind == "memory_merge":
            return [f"memory_merge {p} {r.choice(['on', 'on', 'off'])}"]
        rng = self._range(sym)
        if rng is None:
            return None
        a, n = rng
        ln = f"{a:#x} {n:#x}"
        if kind == "munmap":
            line = f"munmap {p} {ln}"
        elif kind == "mprotect":
            line = f"mprotect {p} {ln} {r.choice(MPROTECT_PROTS)}"
        elif kind == "madvise":
            if not self.advice:
                return None
            line = f"madvise {p} {ln} {r.choice(self.advice)}"
        elif kind == "touch":
            line = f"touch {p} {ln} {r.choice('wwr')}"
        elif kind == "mlock":
            onfault = " onfault" if "mlock_onfault" in self.have and r.random() < 0.3 else ""
            line = f"mlock {p} {ln}{onfault}"
        elif kind == "munlock":
            line = f"munlock {p} {ln}"
        elif kind == "mremap":
            return self._mremap(sym, a, n)
        else:
            raise ValueError(kind)
        return [line] if self.legal(line) else None

    # ------------------------------------------------------------------ arguments

    def legal(self, line: str) -> bool:
        """May ``line`` run in the current shadow state? Always, where holes are allowed;
        in the strict mode a range must be mapped throughout, and a touch, or an advice
        that can fail on one VMA of the range and not another (the kernel then keeps what
        it did to the VMAs before), must lie in one VMA: the strict mode changes nothing
        on bad input, so such partial effects are what it departs from on purpose."""
        tok = line.split()
        word = tok[0]
        if self.holes or word not in RANGE_WORDS:
            return True
        sym, a, n = int(tok[1][1:]), int(tok[2], 0), int(tok[3], 0)
        if sym not in self.live:
            return True
        if word == "mremap":
            return True  # EFAULT before anything changes, or issue 18's shrink case
        if not self._covered(sym, a, n):
            return False
        if word == "touch" or (word == "madvise" and tok[4] in FAILABLE_ADVICE):
            return any(v["start"] <= a and a + n <= v["end"] for v in self._vmas(sym))
        return True

    def valid(self, steps: Sequence[Step]) -> bool:
        """Is every step of ``steps`` :meth:`legal` where it runs (replayed on a fresh shadow)?"""
        self.sim, self.syms, self.live = Simulator(self.spec), [], []
        done: List[Step] = []
        for st in steps:
            if not self.legal(st[0]):
                return False
            self._apply(done, st)
        return True

    def _covered(self, sym: int, a: int, n: int) -> bool:
        """Is [a, a+n) fully mapped in p<sym>?"""
        cur, end = a, a + n
        for v in sorted(self._vmas(sym), key=lambda v: v["start"]):
            if v["start"] <= cur < v["end"]:
                cur = v["end"]
        return cur >= end

    def _range(self, sym: int) -> Optional[Tuple[int, int]]:
        """A page range: within a VMA (whole, head, tail, middle), across neighbours, or
        anywhere in the window (only where holes are allowed, or it is mapped)."""
        r = self.rng
        vmas = sorted(self._vmas(sym), key=lambda v: v["start"])
        for _ in range(8):
            how = r.random()
            if vmas and how < 0.75:
                i = r.randrange(len(vmas))
                v = vmas[i]
                s, e = v["start"] // PAGE, v["end"] // PAGE
                if how < 0.2 and i + 1 < len(vmas):
                    e = r.randint(vmas[i + 1]["start"] // PAGE + 1, vmas[i + 1]["end"] // PAGE)
                    s = r.randint(s, v["end"] // PAGE - 1)
                elif how < 0.4:
                    pass
                else:
                    s = r.randint(s, e - 1)
                    e = r.randint(s + 1, e)
            else:
                s = REGION // PAGE + r.randrange(WINDOW)
                e = min(s + r.randint(1, 8), REGION_END // PAGE)
            a, n = s * PAGE, (e - s) * PAGE
            if self.holes or self._covered(sym, a, n):
                return a, n
        return None

    def _mmap(self, sym: int) -> str:
        r = self.rng
        n = r.choice([1, 1, 2, 2, 3, 4, 4, 6, 8])
        vmas = sorted(self._vmas(sym), key=lambda v: v["start"])
        near = r.choice(vmas) if vmas and r.random() < 0.5 else None
        if near is not None and r.random() < 0.5:
            addr = near["end"]
        elif near is not None:
            addr = near["start"] - n * PAGE
        else:
            addr = REGION + r.randrange(WINDOW) * PAGE
        addr = min(max(addr, REGION), REGION_END - n * PAGE)
        prot = near["prot"] or "none" if near is not None and r.random() < 0.6 else r.choice(PROTS)
        tail = ""
        if near is not None and near.get("file") in FILES and r.random() < 0.7:
            off = near["pgoff"] + (addr - near["start"]) // PAGE
            if 0 <= off < FILE_OFFSET_PAGES:
                tail = f" file {near['file']} {off * PAGE:#x}"
        elif r.random() < 0.3:
            tail = f" file {r.choice(FILES)} {r.randrange(FILE_OFFSET_PAGES) * PAGE:#x}"
        flags = []
        if r.random() < 0.1:
            flags.append("noreserve")
        if r.random() < 0.08:
            flags.append("stack")
        locked = "map_locked" in self.have and r.random() < 0.06
        if "map_noreplace" in self.have and r.random() < 0.1:
            flags.append("noreplace")
        if locked:  # the trace's order: noreplace, then locked
            flags.append("locked")
        return f"mmap p{sym} {addr:#x} {n * PAGE:#x} {prot}{tail}" + "".join(f" {f}" for f in flags)

    def _mremap(self, sym: int, a: int, n: int) -> Optional[Step]:
        """Shrink, grow in place, or move to a window address (always MREMAP_FIXED when it
        moves: the kernel's own choice of address is not modelled)."""
        r, p = self.rng, f"p{sym}"
        if not self.holes and not any(v["start"] <= a and a + n <= v["end"] for v in self._vmas(sym)):
            if r.random() < 0.7:
                return None
        how = r.random()
        if how < 0.3:
            new = r.randint(1, max(1, n // PAGE)) * PAGE
            return [f"mremap {p} {a:#x} {n:#x} {new:#x} nomove"]
        if how < 0.5:
            return [f"mremap {p} {a:#x} {n:#x} {n + r.randint(1, 4) * PAGE:#x} nomove"]
        new = r.choice([n, n, n + PAGE, max(PAGE, n - PAGE)])
        to = REGION + r.randrange(WINDOW - new // PAGE + 1) * PAGE
        if to < a + n and a < to + new:
            return None  # overlapping ranges are EINVAL on both sides: rarely informative
        dontunmap = " dontunmap" if "mremap_dontunmap" in self.have and new == n and r.random() < 0.2 else ""
        return [f"mremap {p} {a:#x} {n:#x} {new:#x} move {to:#x}{dontunmap}"]


def _text(lines: Sequence[str]) -> str:
    return "# rmapsim trace v1\n" + "".join(f"{x}\n" for x in lines)


def trace_text(steps: Sequence[Step], header: Sequence[str] = ()) -> str:
    """The steps as one version-1 trace (``header``: comment lines without ``#``)."""
    lines = [f"# {h}" for h in header] + [x for s in steps for x in s]
    return _text(lines)


def _image(rows: Sequence[Tuple[int, int, str, int, str, Sequence[str], int]], start_brk: int, brk: int) -> Image:
    vmas = [KVma(a, b, prot, off, path, frozenset(flags)) for a, b, prot, off, path, flags, _ in rows]
    return Image(vmas, start_brk, brk, {r[0]: r[6] for r in rows})


#: The driver's image as Linux 6.18 (x86-64, gcc 12, glibc 2.36 static, no randomisation)
#: starts it: what ``--against`` and the tests use in place of a live process's.
DRIVER_IMAGE = _image(
    [
        (0x400000, 0x401000, "r", 0x0, "/kserve", ["me", "mr", "mw", "rd"], 0),
        (0x401000, 0x47B000, "rx", 0x1000, "/kserve", ["ex", "me", "mr", "mw", "rd"], 0),
        (0x47B000, 0x4A3000, "r", 0x7B000, "/kserve", ["me", "mr", "mw", "rd"], 0),
        (0x4A3000, 0x4A7000, "r", 0xA2000, "/kserve", ["ac", "me", "mr", "mw", "rd"], 8),
        (0x4A7000, 0x4AA000, "rw", 0xA6000, "/kserve", ["ac", "me", "mr", "mw", "rd", "wr"], 12),
        (0x4AA000, 0x4B1000, "rw", 0x0, "", ["ac", "me", "mr", "mw", "rd", "wr"], 12),
        (0x4B1000, 0x4D3000, "rw", 0x0, "[heap]", ["ac", "me", "mr", "mw", "rd", "wr"], 8),
        (0x7FFFF7FF7000, 0x7FFFF7FFB000, "r", 0x0, "[vvar]", ["dd", "de", "io", "mr", "pf", "rd"], 0),
        (0x7FFFF7FFB000, 0x7FFFF7FFD000, "r", 0x0, "[vvar_vclock]", ["dd", "de", "io", "mr", "pf", "rd"], 0),
        (0x7FFFF7FFD000, 0x7FFFF7FFF000, "rx", 0x0, "[vdso]", ["de", "ex", "me", "mr", "mw", "rd"], 0),
        (0x7FFFFFFDE000, 0x7FFFFFFFF000, "rw", 0x0, "[stack]", ["ac", "gd", "me", "mr", "mw", "rd", "wr"], 68),
    ],
    0x4B1000,
    0x4D3000,
)
