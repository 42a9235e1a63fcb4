"""Summarise an event log written by ``rmapsim replay TRACE --events FILE``: objects
allocated and freed per operation kind, and allocation attempts per allocation site.

    python examples/event_summary.py build-events.csv
"""

import sys

import pandas as pd


def main(path: str) -> None:
    df = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    kinds = ["vma", "anon_vma", "anon_vma_chain", "page"]
    cols = [f"{how}_{k}" for k in kinds for how in ("alloc", "freed")]
    print(df.groupby("kind")[cols].sum().sort_values("alloc_vma", ascending=False).to_string())
    sites = df[[c for c in df.columns if c.startswith("alloc:")]].sum()
    print(sites[sites > 0].to_string())
    peak = df.loc[df.live_vma.idxmax()]
    print(
        f"most VMAs live after op {peak.op} ({peak.kind}): "
        + ", ".join(f"{k} {peak['live_' + k]}" for k in ["mm", *kinds])
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
