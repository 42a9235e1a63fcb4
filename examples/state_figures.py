"""The state pictures of docs/studies.md ("Looking at one state"):

    python examples/state_figures.py docs/state.png docs/state_storm.png

The first is three generations in 6.18 (a parent, a child that wrote one page, a
grandchild), the second a fork storm of 300 children in 6.18, whose 300 identical child
anon_vmas plot_state draws once.
"""

from __future__ import annotations

import sys

import matplotlib

import rmapsim

PAGE = rmapsim.PAGE_SIZE


def three_generations() -> rmapsim.Simulator:
    s = rmapsim.Simulator(era="6.18")
    p = s.spawn()
    a = s.mmap(p, 4 * PAGE)
    s.touch(p, a, 4 * PAGE)
    c = s.fork(p)
    s.touch(c, a, PAGE)
    s.fork(c)
    return s


def fork_storm(children: int = 300, pages: int = 8) -> rmapsim.Simulator:
    s = rmapsim.Simulator(era="6.18")
    p = s.spawn()
    a = s.mmap(p, pages * PAGE)
    s.touch(p, a, pages * PAGE)
    s.touch_many(s.fork_many(p, children), a, pages * PAGE)
    return s


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python examples/state_figures.py STATE.png STORM.png", file=sys.stderr)
        return 2
    matplotlib.use("Agg")
    for sim, path in ((three_generations(), argv[0]), (fork_storm(), argv[1])):
        ax = sim.plot_state()
        ax.figure.savefig(path, dpi=130, bbox_inches="tight")
        print(f"{path}: {ax.rmapsim_drawn['nodes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
