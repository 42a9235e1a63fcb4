"""Operations per second of the batched hypothesis strategy, hypothesis's own generation
included: `@given(programs())` running each example with `Program.run` (decode, apply,
structural checks after every operation, the full check every 16), for a fixed number of
examples, with shrinking and the example database off.

    python benches/hypothesis_throughput.py [--era 6.18] [--examples 3000] [--fail-rate 0.02] [--extended]
"""

from __future__ import annotations

import argparse
import sys
import time

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hseed

from rmapsim.testing import programs


def measure(era: str, examples: int, fail_rate: float, extended: bool) -> dict:
    count = {"ops": 0, "examples": 0, "engine_s": 0.0}

    @hseed(1)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(programs())
    def run(prog):
        t = time.perf_counter()
        arr, violation = prog.run(era, fail_rate, extended)
        count["engine_s"] += time.perf_counter() - t
        assert violation is None, violation
        count["ops"] += len(arr)
        count["examples"] += 1

    t0 = time.perf_counter()
    run()
    dt = time.perf_counter() - t0
    return {**count, "seconds": dt, "ops_per_s": count["ops"] / dt}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--era", default="6.18")
    ap.add_argument("--examples", type=int, default=3000)
    ap.add_argument("--fail-rate", type=float, default=0.02)
    ap.add_argument("--extended", action="store_true")
    a = ap.parse_args()
    r = measure(a.era, a.examples, a.fail_rate, a.extended)
    print(
        f"era {a.era}: {r['examples']:,} examples, {r['ops']:,} operations in {r['seconds']:.2f} s = "
        f"{r['ops_per_s']:,.0f} ops/s including generation ({r['ops'] / r['examples']:.0f} ops per example; "
        f"the engine's share of the time {r['engine_s'] / r['seconds']:.0%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
