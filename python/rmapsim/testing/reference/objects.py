"""The kernel objects of the reference model (mm_struct, vm_area_struct, anon_vma,
anon_vma_chain, page, swap slot, page-table entry), its constants and small helpers."""

from __future__ import annotations

import operator
from typing import Dict, List

from ...errors import InvalidArgument

PAGE = 4096
PAGE_SHIFT = 12
MMAP_BASE = 0x7F0000000000
MMAP_MIN_ADDR = 0x10000
TASK_SIZE = 1 << 47
FILE_MAX = (1 << 20) - 1  # file identities the engine can hold (vm_file in bits 12-31 of its flags word)
MAX_FILE_PAGES = 1 << 52  # the engine's bound on pgoff + pages of a file mapping

ERAS = ("2.6.33", "2.6.34")

# madvise_behavior(): (flags cleared, flags set)
_FLAG_ADVICE = {
    "normal": (frozenset({"rand", "seq"}), frozenset()),
    "random": (frozenset({"seq"}), frozenset({"rand"})),
    "sequential": (frozenset({"rand"}), frozenset({"seq"})),
    "dontfork": (frozenset(), frozenset({"dontcopy"})),
    "dofork": (frozenset({"dontcopy"}), frozenset()),
}
_ADVICE = set(_FLAG_ADVICE) | {"dontneed", "pageout"}
_LATER_ADVICE = {"wipeonfork", "keeponfork"}  # Linux 4.14: EINVAL in 2.6.x


def parse_prot(prot) -> frozenset:
    """ "", "none", or letters from r/w/x in any order without repeats."""
    if prot is None:
        prot = "rw"
    if not isinstance(prot, str):
        raise InvalidArgument(f"prot must be a string, got {prot!r}")
    if prot in ("", "none"):
        return frozenset()
    if len(set(prot)) != len(prot) or not set(prot) <= set("rwx"):
        raise InvalidArgument(f"bad prot {prot!r}")
    return frozenset(prot)


def prot_str(prot: frozenset) -> str:
    return "".join(c for c in "rwx" if c in prot)


# --------------------------------------------------------------------------- kernel objects


class AnonVma:
    __slots__ = ("id", "head", "freed")

    def __init__(self, ident: int):
        self.id = ident
        self.head: list = []  # 2.6.33: Vma entries; 2.6.34: Avc entries -- walk order
        self.freed = False

    def __repr__(self):
        return f"av{self.id}{'(freed)' if self.freed else ''}"


class Avc:
    __slots__ = ("vma", "anon_vma")

    def __init__(self, vma, anon_vma):
        self.vma = vma
        self.anon_vma = anon_vma


class Vma:
    __slots__ = ("mm", "start", "end", "pgoff", "prot", "flags", "file", "anon_vma", "chain", "dead")

    def __init__(self, mm, start, end, pgoff, prot, flags, anon_vma=None, file=None):
        self.mm = mm
        self.start = start
        self.end = end
        self.pgoff = pgoff  # anonymous: the address page it was mapped at; file: the file page
        self.prot = prot
        self.flags = flags
        self.file = file  # vm_file: None (anonymous) or the file identity (a private mapping)
        self.anon_vma = anon_vma
        self.chain: List[Avc] = []  # newest first (vma->anon_vma_chain from its head)
        self.dead = False

    def npages(self) -> int:
        return (self.end - self.start) >> PAGE_SHIFT

    def linear_page_index(self, addr: int) -> int:
        return self.pgoff + ((addr - self.start) >> PAGE_SHIFT)

    def __repr__(self):
        return f"Vma(pid {self.mm.pid} [{self.start:#x}, {self.end:#x}) pgoff {self.pgoff:#x} {prot_str(self.prot)} {sorted(self.flags)} file {self.file} {self.anon_vma})"


class Page:
    __slots__ = ("id", "mapping", "index", "mapcount", "slot", "freed")

    def __init__(self, ident, mapping, index):
        self.id = ident
        self.mapping = mapping
        self.index = index
        self.mapcount = 0
        self.slot = None
        self.freed = False


class Slot:
    __slots__ = ("id", "count", "cache")

    def __init__(self, ident):
        self.id = ident
        self.count = 0  # swap entries referring to the slot
        self.cache = None  # the swap-cache page (SWAP_HAS_CACHE)


ZERO, PRESENT, SWAP, FILE = "zero", "page", "swap", "file"
# FILE: a page-cache page mapped (read-only) in a private file mapping. It is not an anon
# page: page_add_file_rmap / page_remove_rmap on it touch no anon rmap state, so the model
# keeps no object for it (neither does the engine: its page table shows such an entry as it
# shows the zero page, and page_at() names no page there).


class Pte:
    __slots__ = ("kind", "page", "writable", "slot")

    def __init__(self, kind, page=None, writable=False, slot=None):
        self.kind = kind
        self.page = page
        self.writable = writable
        self.slot = slot


class Mm:
    __slots__ = ("pid", "vmas", "ptes")

    def __init__(self, pid):
        self.pid = pid
        self.vmas: List[Vma] = []  # sorted by start
        self.ptes: Dict[int, Pte] = {}


def _file_args(file, offset):
    """(file identity, byte offset) or (None, None): the engine binding's checks."""
    if file is None:
        if offset is not None:
            raise InvalidArgument("offset given without file")
        return None, None
    file = _int_arg(file, "file")
    if not 1 <= file < 1 << 32:
        raise InvalidArgument(f"file identity must be a positive int, got {file}")
    offset = 0 if offset is None else _int_arg(offset, "offset")
    if offset < 0 or offset >= 1 << 64:
        raise InvalidArgument(f"offset must be >= 0, got {offset}")
    return file, offset


def _int_arg(x, what) -> int:
    if isinstance(x, bool):
        raise InvalidArgument(f"{what} must be an int, got {x!r}")
    try:
        return operator.index(x)
    except TypeError:
        raise InvalidArgument(f"{what} must be an int, got {x!r}") from None


def _index(seq, obj) -> int:
    for i, x in enumerate(seq):
        if x is obj:
            return i
    raise ValueError(f"{obj!r} not in list")


def _remove(seq, obj):
    del seq[_index(seq, obj)]
