"""Run hypothesis (``rmapsim.testing.programs``) against one era for a wall-clock budget,
seed after seed, and report the examples and operations run and any violation: the
"fixed eras survive N minutes of hypothesis" check.

    python benches/hypothesis_soak.py --era 6.18 --minutes 10 [--fail-rate 0.02] [--extended]
"""

from __future__ import annotations

import argparse
import sys
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hseed

from rmapsim.testing import ProgramViolation, programs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--era", default="6.18")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fail-rate", type=float, default=0.02)
    ap.add_argument("--extended", action="store_true")
    ap.add_argument("--examples", type=int, default=1000, help="examples per seed (default 1000)")
    a = ap.parse_args()
    total = {"examples": 0, "ops": 0, "seeds": 0}
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < a.minutes * 60:
        total["seeds"] += 1

        @hseed(total["seeds"])
        @settings(max_examples=a.examples, database=None, deadline=None, suppress_health_check=list(HealthCheck))
        @given(programs())
        def soak(prog):
            arr, v = prog.run(a.era, a.fail_rate, a.extended)
            total["examples"] += 1
            total["ops"] += len(arr)
            if v is not None:
                raise ProgramViolation(a.era, v, arr)

        try:
            soak()
        except ProgramViolation as e:
            print(f"era {a.era}: VIOLATION (seed {total['seeds']}): {e}")
            return 1
    dt = time.perf_counter() - t0
    print(
        f"era {a.era}: no violation in {dt / 60:.1f} min: {total['seeds']} seeds, {total['examples']:,} examples, "
        f"{total['ops']:,} operations (fail_rate {a.fail_rate}{', extended' if a.extended else ''})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
