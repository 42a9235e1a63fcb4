"""render_layout (docs/api-contract.md): the picture's rows, page states, and labels."""

from __future__ import annotations

import pytest

import rmapsim

from helpers import PAGE, PAGE_SHIFT, X, page_at, write_all


def test_render_layout_picture(sim):
    pid = sim.spawn()
    sim.mmap(pid, 4 * PAGE, addr=X)
    write_all(sim, pid, X, 2)
    sim.touch(pid, X + 2 * PAGE, PAGE, write=False)
    child = sim.fork(pid)
    sim.try_to_unmap([page_at(sim, pid, X + PAGE)])
    sim.mprotect(pid, X + 3 * PAGE, PAGE, "r")
    sim.mmap(pid, PAGE, addr=X + 6 * PAGE, prot="none")
    lines = sim.render_layout(pid).splitlines()
    assert lines[0].startswith(f"pid {pid}: 3 VMA(s) in [{X:#x}, {X + 7 * PAGE:#x})")
    assert lines[1] == "  0123456"
    assert lines[2] == "  AAAB  C"
    # page 0 shared with the child, 1 swapped out, 2 zero page, 3 none; the "none" VMA empty
    assert lines[3] == "  swz.  ."
    assert lines[4].startswith(f"  A [{X:#x}, {X + 3 * PAGE:#x}) 3 pages pgoff {X >> PAGE_SHIFT:#x} rw-")
    assert "r--" in lines[5] and "---" in lines[6]
    assert sim.render_layout(child).splitlines()[3] == "  swz."
    sim.exec(child)
    assert sim.render_layout(child) == f"pid {child}: no VMAs\n"


def _labels(picture: str) -> dict:
    """{label: handle} from a picture's legend line (the last line)."""
    legend = picture.rstrip("\n").splitlines()[-1].split()
    return {k: int(v, 16) for k, v in (x.split("=") for x in legend)}


@pytest.mark.parametrize("era", ["2.6.34", "6.18"])
def test_labels_are_global_across_processes(era):
    """Three generations (parent writes, forks; child writes, forks): in a chain era the
    child's VMA has its own anon_vma and the chain [parent's, own] (anon_vma_fork), the
    grandchild [parent's, child's, own] (2.6.34; 6.18 may reuse none here: every anon_vma
    still has a VMA of its own). One label names one anon_vma in every picture, and one
    anon_vma has one label."""
    sim = rmapsim.Simulator(era=era, seed=0)
    p = sim.spawn()
    a = sim.mmap(p, 4 * PAGE, prot="rw")
    sim.touch(p, a, 4 * PAGE, write=True)
    c = sim.fork(p)
    sim.touch(c, a, PAGE, write=True)
    g = sim.fork(c)
    pictures = {q: sim.render_layout(q) for q in (p, c, g)}
    by_label = {}
    for _q, pic in pictures.items():
        for label, handle in _labels(pic).items():
            by_label.setdefault(label, set()).add(handle)
    assert all(len(h) == 1 for h in by_label.values()), by_label
    handles = [next(iter(h)) for h in by_label.values()]
    assert len(handles) == len(set(handles)), by_label
    # the handles are the VMAs' anon_vmas, read from vmas(): 3 distinct ones, first seen in
    # the parent, then the child, then the grandchild
    own = [int(sim.vmas(q)[0]["anon_vma"]) for q in (p, c, g)]
    assert len(set(own)) == 3
    label_of = {next(iter(h)): lab for lab, h in by_label.items()}
    assert [label_of[h] for h in own] == ["av0", "av1", "av2"]
    assert "anon_vma av1 chain [av0 av1]" in pictures[c]
    assert "anon_vma av2 chain [av0 av1 av2]" in pictures[g]
