"""Both sides of ``validate-kernel --fuzz`` in one form, and their comparison.

After every step (one trace operation, see :mod:`.fuzzgen`) each side gives an
:class:`Observation`: the operation's result, every live process's VMAs in the fuzzed
region and outside it (the driver's own mappings, mirrored into the simulator), the
state of every page-table entry in the region, which entries map one physical page or
one swap entry, each anon page's mapcount, and the step's allocations and frees of
``anon_vma`` / ``anon_vma_chain`` / ``vm_area_struct``. :func:`compare` names the
dimensions that differ (:data:`DIMENSIONS`).

Processes are named by trace symbol (1 for ``p1``), pages by (symbol, address) and
physical pages and swap entries only by which entries share them, so nothing depends on
pids, PFNs, swap offsets or simulator handles.

The kernel's ``VmFlags`` compared are the ones rmapsim models (:data:`FLAG_CODES`);
others (``mr``/``mw``/``me``, ``gd``, ``pf``/``io``/``de`` of the special mappings,
soft-dirty) are not. File mappings are named by the simulator's file identity (``f<ID>``
files; the driver's image and special mappings by :data:`.fuzzgen.IMAGE_FILE` /
:data:`.fuzzgen.SPECIAL_FILES`) and compared with their offset.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ... import Simulator, trace
from .fuzzgen import IMAGE_FILE, OBSERVED, SPECIAL_FILES
from .live import PAGE, KernelState, KVma
from .scenarios import CACHES, KINDS

#: The dimensions compared, in report order.
DIMENSIONS = ("result", "vmas", "own_vmas", "pages", "sharing", "mapcount", "objects")
#: simulator flag name -> smaps VmFlags code.
FLAG_CODES = {
    "account": "ac",
    "noreserve": "nr",
    "rand": "rr",
    "seq": "sr",
    "dontcopy": "dc",
    "wipeonfork": "wf",
    "hugepage": "hg",
    "nohugepage": "nh",
    "dontdump": "dd",
    "locked": "lo",
    "lockonfault": "lf",
    "mergeable": "mg",
}
_COMPARED_CODES = frozenset(FLAG_CODES.values())
#: errno -> the rmapsim exception class a simulator should raise (AGREED INTERFACES).
ERRNO_CLASS = {
    _errno.ENOMEM: "BadAddress",
    _errno.EFAULT: "BadAddress",
    _errno.EINVAL: "InvalidArgument",
    _errno.EAGAIN: "TryAgain",
    _errno.EEXIST: "AlreadyMapped",
}
#: Where docs/api-contract.md gives an operation's errno another class: mremap's ENOMEM
#: (no room to grow in place without MREMAP_MAYMOVE, ``vma_merge_extend`` failing) is
#: OutOfMemory ("the kernel's ENOMEM").
ERRNO_CLASS_BY_OP = {("mremap", _errno.ENOMEM): "OutOfMemory"}
#: Operations whose value is compared (an address or the break); others only by class.
VALUED = ("mmap", "mremap", "brk")

VmaRow = Tuple[int, int, str, Tuple[str, ...], Optional[int], Optional[int]]


@dataclass
class Observation:
    """One side's view after a step (module docstring)."""

    result: Tuple[Any, ...]
    vmas: Dict[int, Tuple[VmaRow, ...]] = field(default_factory=dict)
    own_vmas: Dict[int, Tuple[VmaRow, ...]] = field(default_factory=dict)
    pages: Dict[Tuple[int, int], str] = field(default_factory=dict)
    sharing: Tuple[Tuple[Tuple[int, int], ...], ...] = ()
    mapcount: Dict[Tuple[int, int], int] = field(default_factory=dict)
    objects: Optional[Dict[str, int]] = None  # None: not compared (spawn)

    def dim(self, name: str) -> Any:
        return getattr(self, name)


def kernel_result(word: str, value: int, err: int) -> Tuple[Any, ...]:
    """``(class, value)`` of a kernel call: ``("ok", value)`` (value only for :data:`VALUED`)
    or the class :data:`ERRNO_CLASS_BY_OP` / :data:`ERRNO_CLASS` maps its errno to
    (``errno EIO`` for others)."""
    if err:
        if (word, err) in ERRNO_CLASS_BY_OP:
            return (ERRNO_CLASS_BY_OP[word, err],)
        return (ERRNO_CLASS.get(err, f"errno {_errno.errorcode.get(err, err)}"),)
    return ("ok", value if word in VALUED else 0)


def _in_region(start: int, end: int) -> bool:
    return start < OBSERVED[1] and end > OBSERVED[0]


#: Flags the kernel never sets on VM_SPECIAL mappings ([vvar], [vvar_vclock], [vdso]):
#: mlock/mlockall skip them (mlock_fixup) and so does KSM (vma_ksm_compatible). The mirror
#: makes them plain file mappings, so these flags are not compared on them.
_NOT_ON_SPECIAL = frozenset({"lo", "lf", "mg"})
_SPECIAL_IDS = frozenset(SPECIAL_FILES.values())


def _group_rows(
    rows: Dict[int, List[VmaRow]],
) -> Tuple[Dict[int, Tuple[VmaRow, ...]], Dict[int, Tuple[VmaRow, ...]]]:
    rows = {
        s: [
            r if r[4] not in _SPECIAL_IDS else (*r[:3], tuple(f for f in r[3] if f not in _NOT_ON_SPECIAL), *r[4:])
            for r in v
        ]
        for s, v in rows.items()
    }
    region = {s: tuple(r for r in v if _in_region(r[0], r[1])) for s, v in rows.items()}
    own = {s: tuple(r for r in v if not _in_region(r[0], r[1])) for s, v in rows.items()}
    return region, own


def _sharing(keys: Dict[Tuple[int, int], Any]) -> Tuple[Tuple[Tuple[int, int], ...], ...]:
    """Groups of more than one entry with one value (the page or swap entry they map)."""
    groups: Dict[Any, List[Tuple[int, int]]] = {}
    for k, v in keys.items():
        groups.setdefault(v, []).append(k)
    return tuple(sorted(tuple(sorted(g)) for g in groups.values() if len(g) > 1))


def _file_id(path: str, files_dir: str) -> Optional[int]:
    if path in SPECIAL_FILES:
        return SPECIAL_FILES[path]
    if path.startswith(files_dir + "/f"):
        return int(path[len(files_dir) + 2 :])
    if path.startswith("/"):
        return IMAGE_FILE
    return None


def kernel_observation(result: Tuple[Any, ...], st: KernelState, files_dir: str) -> Observation:
    """The kernel side's :class:`Observation` of ``st`` (:meth:`.live.LiveKernel.observe`)."""

    def row(v: KVma) -> VmaRow:
        fid = _file_id(v.path, files_dir)
        return (v.start, v.end, v.prot, tuple(sorted(v.flags & _COMPARED_CODES)), fid, v.offset if fid else None)

    region, own = _group_rows({s: [row(v) for v in vs] for s, vs in st.vmas.items()})
    pages = {k: ps.kind for k, ps in st.pages.items()}
    ident = {k: (ps.kind, ps.value) for k, ps in st.pages.items() if ps.kind in ("anon", "swap")}
    mapcount = {k: ps.mapcount for k, ps in st.pages.items() if ps.kind == "anon"}
    return Observation(result, region, own, pages, _sharing(ident), _first_of_groups(mapcount, ident))


def _first_of_groups(mapcount: Dict[Tuple[int, int], int], ident: Dict[Tuple[int, int], Any]) -> Dict:
    """Each anon page's mapcount once, keyed by the first entry mapping it."""
    out: Dict[Tuple[int, int], int] = {}
    seen: Dict[Any, Tuple[int, int]] = {}
    for k in sorted(mapcount):
        if ident[k] not in seen:
            seen[ident[k]] = k
            out[k] = mapcount[k]
    return out


class SimSide:
    """The simulator of ``spec`` running the same steps line by line (``_apply_from``)."""

    def __init__(self, spec: str) -> None:
        self.sim = Simulator(spec)
        self.syms: List[int] = []

    def totals(self) -> Dict[str, int]:
        out = {f"{c}_{k}": 0 for c in CACHES for k in KINDS}
        short = {"anon_vma": "anon_vma", "anon_vma_chain": "avc", "vm_area_struct": "vma"}
        for ws in self.sim.write_stats().values():
            for cache, s in short.items():
                for k in KINDS:
                    out[f"{cache}_{k}"] += int(ws[f"{s}_{k}"])
        return out

    def run(self, step: Sequence[str]) -> Tuple[Tuple[Any, ...], List[str]]:
        """Apply a step; returns the result of its operation and the messages of any of
        its mirror lines that failed (which should not happen)."""
        rows = trace.rows(trace.parse("# rmapsim trace v1\n" + "".join(f"{x}\n" for x in step)))
        status, value, message, self.syms = self.sim._apply_from(rows, self.syms)
        word = step[0].split()[0]
        st = int(status[0])
        if st == 0:
            res: Tuple[Any, ...] = ("ok", int(value[0]) if word in VALUED else 0)
        else:
            res = (trace.ERROR_KINDS[st - 1] if st <= len(trace.ERROR_KINDS) else f"status {st}",)
        bad = [f"{step[i]}: {message[i]}" for i in range(1, len(step)) if int(status[i]) != 0]
        return res, bad

    def observation(self, result: Tuple[Any, ...]) -> Observation:
        sim = self.sim
        sym_of = {pid: i + 1 for i, pid in enumerate(self.syms)}
        live = sorted(int(p) for p in sim.pids())
        rows: Dict[int, List[VmaRow]] = {}
        for pid in live:
            rows[sym_of[pid]] = [
                (
                    v["start"],
                    v["end"],
                    "".join(c for c in "rwx" if c in v["prot"]),
                    tuple(sorted(FLAG_CODES[f] for f in v["flags"] if f in FLAG_CODES)),
                    v["file"],
                    v["pgoff"] * PAGE if v["file"] is not None else None,
                )
                for v in sim.vmas(pid)
            ]
        region, own = _group_rows(rows)
        pids, addrs, kinds, values = sim._pte_entries()
        pages: Dict[Tuple[int, int], str] = {}
        ident: Dict[Tuple[int, int], Any] = {}
        mapcount: Dict[Tuple[int, int], int] = {}
        for pid, a, k, val in zip(pids.tolist(), addrs.tolist(), kinds.tolist(), values.tolist()):
            if not OBSERVED[0] <= a < OBSERVED[1]:
                continue
            key = (sym_of[pid], a)
            pages[key] = {1: "z", 2: "anon", 3: "swap"}[k]
            if k == 2:
                ident[key] = ("anon", val)
                mapcount[key] = int(sim.page_info(val)["mapcount"])
            elif k == 3:
                ident[key] = ("swap", val)
        return Observation(result, region, own, pages, _sharing(ident), _first_of_groups(mapcount, ident))


def delta(after: Dict[str, int], before: Dict[str, int]) -> Dict[str, int]:
    return {k: after[k] - before[k] for k in after}


def fault_around(k: Observation, s: Observation) -> List[Tuple[int, int]]:
    """The kernel's entries a read fault mapped by fault-around: ``z`` (a page-cache page)
    in a file VMA where the simulator has no entry. The kernel's ``do_read_fault`` maps
    the already cached pages around the faulting one (``do_fault_around``, up to
    ``fault_around_bytes``, 64 KiB by default); rmapsim maps only the faulting page. The
    one departure :func:`compare` tolerates (docs/validation.md)."""
    files = {
        sym: [(r[0], r[1]) for r in rows if r[4] is not None and r[4] not in SPECIAL_FILES.values()]
        for sym, rows in k.vmas.items()
    }
    return [
        key
        for key, kind in k.pages.items()
        if kind == "z" and key not in s.pages and any(a <= key[1] < b for a, b in files.get(key[0], ()))
    ]


def compare(k: Observation, s: Observation) -> Tuple[List[str], int]:
    """The dimensions in which the two observations differ, and how many kernel entries
    were left out as fault-around (:func:`fault_around`; they are removed from ``k``)."""
    out = []
    extra = fault_around(k, s)
    for key in extra:
        del k.pages[key]
    for d in DIMENSIONS:
        kv, sv = k.dim(d), s.dim(d)
        if d == "objects" and (kv is None or sv is None):
            continue
        if kv != sv:
            out.append(d)
    return out, len(extra)


def describe(k: Observation, s: Observation, dims: Sequence[str]) -> List[str]:
    """Both sides of every differing dimension, for a person (one block per dimension)."""
    out: List[str] = []
    for d in dims:
        out.append(f"  {d}:")
        kv, sv = k.dim(d), s.dim(d)
        if isinstance(kv, dict) and isinstance(sv, dict):
            for key in sorted(set(kv) | set(sv), key=str):
                a, b = kv.get(key), sv.get(key)
                if a != b:
                    out.append(f"    {_key(key)}: kernel {_fmt(a)}")
                    out.append(f"    {' ' * len(_key(key))}  rmapsim {_fmt(b)}")
        else:
            out.append(f"    kernel  {_fmt(kv)}")
            out.append(f"    rmapsim {_fmt(sv)}")
    return out


def _key(key: Any) -> str:
    if isinstance(key, tuple) and len(key) == 2:
        return f"p{key[0]} {key[1]:#x}"
    if isinstance(key, int):
        return f"p{key}"
    return str(key)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, tuple) and v and isinstance(v[0], tuple) and len(v[0]) == 6:
        return "; ".join(_vma(r) for r in v) or "(no VMA)"
    if isinstance(v, tuple) and v and isinstance(v[0], tuple):
        return "; ".join("{" + ", ".join(_key(x) for x in g) + "}" for g in v)
    return str(v)


def _vma(r: VmaRow) -> str:
    start, end, prot, flags, fid, off = r
    f = f" file {fid} {off:#x}" if fid is not None else ""
    return f"[{start:#x}, {end:#x}) {prot or 'none'}{f}" + (f" {','.join(flags)}" if flags else "")
