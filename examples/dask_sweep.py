"""A sweep on a Dask cluster, every run starting from one built state.

python examples/dask_sweep.py                      # a LocalCluster of 2 worker processes
python examples/dask_sweep.py tcp://host:8786      # an existing scheduler
"""

import sys

import rmapsim
from rmapsim.cluster import dask_executor
from rmapsim.study import sweep, to_pandas


def busy_machine() -> rmapsim.Simulator:
    """A prefork server already running: a parent with 4,096 written heap pages and 32
    workers that each wrote a quarter of them."""
    sim = rmapsim.Simulator(era="6.18")
    parent = sim.spawn()
    heap = sim.mmap(parent, 4096 * 4096)
    sim.touch(parent, heap, 4096 * 4096)
    sim.touch_many(sim.fork_many(parent, 32), heap, 1024 * 4096)
    return sim


# The guard matters: a LocalCluster with processes starts its workers by spawning fresh
# interpreters that import this file; without it each would start a cluster of its own.
if __name__ == "__main__":
    ex = dask_executor(address=sys.argv[1] if len(sys.argv) > 1 else None)
    try:
        rows = sweep(
            "fork_storm",
            {"children": [10, 100, 1000], "pages": [100]},
            base=busy_machine(),
            executor=ex,
            progress=lambda done, total: print(f"  {done}/{total} runs done", file=sys.stderr),
        )
    finally:
        ex.close()
    cols = ["era", "children", "base_operations", "mean_vmas_visited", "n_mm", "n_vma", "n_anon_vma", "n_page"]
    print(to_pandas(rows)[cols].to_string(index=False))
