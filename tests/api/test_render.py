"""render_layout (docs/api-contract.md): the picture's rows, page states, and labels.
"""

from __future__ import annotations



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
