"""Navigable read-only views of the simulated kernel objects, named after the kernel's fields.

The dict APIs (:meth:`Simulator.vmas`, :meth:`Simulator.graph`, :meth:`Simulator.page_info`)
give integer handles; a view wraps one handle and follows pointers the way a drgn session
follows them in a live kernel::

    sim.mm(pid).vmas[0].anon_vma.root.num_children

Entry points: :meth:`Simulator.mm` (by pid), :meth:`Simulator.vma_at` (by pid and address),
and :meth:`Simulator.vma`, :meth:`Simulator.anon_vma`, :meth:`Simulator.anon_vma_chain`,
:meth:`Simulator.page` (by handle). A view holds nothing but the simulator and the handle:
every property reads the simulator again, so it never shows old data, and once the object
is freed (munmap, exit, exec, a merge, the last unlink) it raises :class:`StaleHandle`
naming the handle and the operation that freed it. A field the era does not have raises
:class:`AttributeError` naming the era and the kernel release that has it (so
``hasattr(av, "degree")`` asks the era). Views cannot be changed: setting or deleting an
attribute raises :class:`AttributeError`. Two views are equal when they name the same
object of the same simulator. See docs/views.md.
"""

from __future__ import annotations

import operator
from typing import Any, Dict, List

__all__ = ["MmView", "VmaView", "AnonVmaView", "AnonVmaChainView", "PageView"]

#: Why a field is missing, by (kind, field): the kernel release and the knob that has it.
_ABSENT = {
    ("anon_vma", "root"): "anon_vma->root came with 2.6.35 (knob track_root=true)",
    ("anon_vma", "refcount"): "the anon_vma refcount that pins the root came with 2.6.35 (knob track_root=true)",
    ("anon_vma", "parent"): "anon_vma->parent came with 3.19 (knob fork_reuse=degree or active_vmas)",
    ("anon_vma", "degree"): "anon_vma->degree existed from 3.19 to 5.19 (knob fork_reuse=degree); "
    "6.0 replaced it by num_children and num_active_vmas",
    ("anon_vma", "num_children"): "anon_vma->num_children came with 6.0 (knob fork_reuse=active_vmas), "
    "replacing 3.19's degree",
    ("anon_vma", "num_active_vmas"): "anon_vma->num_active_vmas came with 6.0 (knob fork_reuse=active_vmas), "
    "replacing 3.19's degree",
    ("anon_vma", "head"): "anon_vma->head, a list, was the index up to 3.6 (knob index=list); "
    "3.7 replaced it by the interval tree rb_root",
    ("anon_vma", "rb_root"): "anon_vma->rb_root, an interval tree, came with 3.7 (knob index=interval_tree); "
    "before, the index was the list head",
    ("vma", "anon_vma_chain"): "vma->anon_vma_chain came with 2.6.34 (knob linking=chain); "
    "in 2.6.33 the VMA itself sits on anon_vma->head",
}


class _View:
    """One kernel object of one simulator, by handle (see the module docstring)."""

    __slots__ = ("_sim", "_h")
    _sim: Any
    _h: int
    _kind = ""
    _struct = ""

    def __init__(self, sim: Any, handle: int) -> None:
        object.__setattr__(self, "_sim", sim)
        object.__setattr__(self, "_h", handle)

    @classmethod
    def _checked(cls, sim: Any, handle: object) -> Any:
        """The view of a live object (``StaleHandle`` / ``InvalidArgument`` otherwise)."""
        sim._view(cls._kind, handle)  # validates the handle and that the object lives
        return cls(sim, operator.index(handle))  # type: ignore[arg-type]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{self._struct} views are read-only: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self._struct} views are read-only: cannot delete {name!r}")

    @property
    def handle(self) -> int:
        """The object's integer handle, as the dict APIs give it."""
        return self._h

    def _fields(self) -> Dict[str, Any]:
        return self._sim._view(self._kind, self._h)

    def _get(self, name: str, field: str = "") -> Any:
        """Field ``name`` of the object; AttributeError naming ``field`` (default: ``name``)
        and the era when the era has no such field."""
        d = self._fields()
        if name not in d:
            field = field or name
            why = _ABSENT.get((self._kind, field), "not modelled")
            raise AttributeError(f"{self._struct} has no field {field!r} in era {self._sim.era!r}: {why}")
        return d[name]

    def _list(self) -> List[Any]:
        return self._sim._view_list(self._kind, self._h)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._sim is other._sim and self._h == other._h  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash((self._kind, id(self._sim), self._h))

    def __repr__(self) -> str:
        return f"({self._struct} *){self._h:#x}"

    def __copy__(self) -> _View:
        return self  # a view is an immutable reference, copied as copy copies an int

    def __deepcopy__(self, memo: Dict[int, Any]) -> _View:
        return self

    def __reduce__(self) -> Any:
        raise TypeError(f"{self._struct} views cannot be pickled (they point into a live Simulator)")


def _field(name: str, doc: str) -> property:
    return property(lambda self: self._get(name), doc=doc)


def _ptr(name: str, view: str, doc: str) -> property:
    """A pointer field: the view (class ``view`` of this module) of the object it names,
    or None for a NULL pointer."""

    def get(self: _View) -> Any:
        h = self._get(name)
        return None if h is None else globals()[view](self._sim, h)

    return property(get, doc=doc)


class MmView(_View):
    """``struct mm_struct``: one address space (``Simulator.mm(pid)``). After ``exec`` the
    process has a new mm and this view is stale."""

    __slots__ = ()
    _kind = "mm"
    _struct = "struct mm_struct"

    pid = _field("pid", "The pid of the process whose address space this is.")
    map_count = _field("map_count", "``mm->map_count``: VMAs in the address space.")
    start_brk = _field("start_brk", "``mm->start_brk``: the heap's base (0 until set).")
    brk = _field("brk", "``mm->brk``: the current break (0 until a base is set).")

    @property
    def vmas(self) -> List[VmaView]:
        """The VMAs in address order (the kernel's VMA tree / ``mmap`` list)."""
        return [VmaView(self._sim, v) for _, v in self._list()]


class VmaView(_View):
    """``struct vm_area_struct``. A split keeps this object for one part (the kernel's
    ``__split_vma`` allocates the other); a merge that frees it makes this view stale."""

    __slots__ = ()
    _kind = "vma"
    _struct = "struct vm_area_struct"

    vm_start = _field("vm_start", "``vma->vm_start``: first byte.")
    vm_end = _field("vm_end", "``vma->vm_end``: first byte after the VMA.")
    vm_pgoff = _field("vm_pgoff", "``vma->vm_pgoff``: page offset of ``vm_start``.")
    vm_file = _field("vm_file", "File identity (``vma->vm_file``), None for anonymous memory.")
    prot = _field("prot", "``VM_READ|VM_WRITE|VM_EXEC`` as ``vmas()`` spells them (``'rw'``).")
    flags = _field("flags", "The other ``vm_flags`` bits, named as ``vmas()`` names them.")

    vm_mm = _ptr("vm_mm", "MmView", "``vma->vm_mm``: the address space (an :class:`MmView`).")
    anon_vma = _ptr(
        "anon_vma",
        "AnonVmaView",
        "``vma->anon_vma``: where new anonymous pages of the VMA go (None before the first fault).",
    )

    @property
    def anon_vma_chain(self) -> List[AnonVmaChainView]:
        """``vma->anon_vma_chain`` in ``list_for_each_entry`` order: newest first (the
        VMA's own anon_vma first, the root's last; ``graph()`` and ``render_layout()``
        list chains oldest first). 2.6.34+."""
        self._get("chain_len", "anon_vma_chain")  # AttributeError in the legacy era
        return [AnonVmaChainView(self._sim, c) for c, _ in self._list()]


class AnonVmaView(_View):
    """``struct anon_vma``. Era fields: ``root`` and ``refcount`` 2.6.35+; ``parent`` 3.19+;
    ``degree`` 3.19–5.19; ``num_children`` and ``num_active_vmas`` 6.0+; ``head`` up to 3.6,
    ``rb_root`` from 3.7."""

    __slots__ = ()
    _kind = "anon_vma"
    _struct = "struct anon_vma"

    root = _ptr("root", "AnonVmaView", "``anon_vma->root``: the oldest anon_vma of the fork tree (itself for a root).")
    parent = _ptr(
        "parent", "AnonVmaView", "``anon_vma->parent``: the anon_vma of the parent VMA at fork (itself for a root)."
    )
    refcount = _field(
        "refcount",
        "``anon_vma->refcount`` as modelled: 1 while in use plus one per "
        "anon_vma pinning this root (2.6.35 named it external_refcount and "
        "counted only the pins).",
    )
    degree = _field(
        "degree",
        "``anon_vma->degree`` (3.19–5.19): VMAs using it as ``->anon_vma`` "
        "plus child anon_vmas, a root counting itself.",
    )
    num_children = _field(
        "num_children", "``anon_vma->num_children`` (6.0+): anon_vmas whose parent this is, a root counting itself."
    )
    num_active_vmas = _field(
        "num_active_vmas", "``anon_vma->num_active_vmas`` (6.0+): VMAs whose ``->anon_vma`` this is."
    )

    def _members(self, field: str) -> List[Any]:
        if self._get("index") != field:
            self._get(field)  # raises AttributeError naming the era
        out: List[Any] = []
        for c, v in self._list():
            out.append(VmaView(self._sim, v) if c is None else AnonVmaChainView(self._sim, c))
        return out

    @property
    def head(self) -> List[Any]:
        """``anon_vma->head`` (up to 3.6) in list order: the chain entries
        (``same_anon_vma``), or in 2.6.33 the VMAs themselves (``anon_vma_node``)."""
        return self._members("head")

    @property
    def rb_root(self) -> List[AnonVmaChainView]:
        """``anon_vma->rb_root`` (3.7+): the chain entries of the interval tree in order
        (by ``vm_pgoff``; equal starts in link order)."""
        return self._members("rb_root")


class AnonVmaChainView(_View):
    """``struct anon_vma_chain``: links one VMA to one anon_vma (2.6.34+)."""

    __slots__ = ()
    _kind = "anon_vma_chain"
    _struct = "struct anon_vma_chain"

    vma = _ptr("vma", "VmaView", "``avc->vma``.")
    anon_vma = _ptr("anon_vma", "AnonVmaView", "``avc->anon_vma``.")


class PageView(_View):
    """``struct page`` of an anonymous page (handles from ``anon_pages()`` / ``page_at``)."""

    __slots__ = ()
    _kind = "page"
    _struct = "struct page"

    mapping = _ptr(
        "mapping",
        "AnonVmaView",
        "``page->mapping``: the anon_vma (the kernel tags the "
        "pointer with ``PAGE_MAPPING_ANON``). In a buggy era it can be freed: the view then "
        "raises ``StaleHandle``, the use-after-free a walk would meet.",
    )

    index = _field("index", "``page->index``: the linear page offset it was created at.")
    mapcount = _field(
        "mapcount", "``page_mapcount(page)``: present PTEs mapping it (the kernel stores one less in ``_mapcount``)."
    )
    swap_slot = _field(
        "swap_slot",
        "The swap slot in ``page_private`` while the page is in the swap cache (``PageSwapCache``), else None.",
    )
