"""Long runs: 6.18 and 6.0 for hundreds of steps with check() after every one, and 3.19 until
it breaks, every broken sequence replayed on 6.0 and 6.18.

The model and what each harness checks: the docstring of page_model.py.
"""

from __future__ import annotations

import os
import random
from collections import Counter

import rmapsim

from helpers import (
    BUGGY_BREAKS,
    FIRST_BREAK,
    MMAP_BASE,
    PAGE,
    counts,
    entry_kinds,
    invariant_number,
    pids,
    vmas,
)
from lockstep import HandleMap, apply_op, coarser, extra_sharing, vma_boundaries
from model_checks import check_rmap, check_vma_rules, page_level_state
from page_model import MAX_PROCS, SWAP

# --------------------------------------------------------------------------- long runs

LONG_WINDOW = 16  # pages: a small playground, so that VMAs meet, split and merge often
LONG_LO = MMAP_BASE - 64 * PAGE
# op kind -> weight. The ingredients of CVE-2022-42703 (docs/bugs.md, CVE-2022-42703: forks with
# intermediate exits, splits by an attribute inherited across fork, COW writes, re-merges)
# dominate (with these weights about one 3.19 run in seven breaks within 120 steps); the
# rest keeps every other path in the mix.
LONG_WEIGHTS = {
    "fork": 8,
    "exit": 6,
    "split": 3,
    "merge": 2,
    "touch": 4,
    "mprotect": 1,
    "munmap": 0.5,
    "mmap": 0.5,
    "mremap": 1,
    "swap": 0.7,
    "swapin": 0.7,
    "advice": 0.7,
    "exec": 0.1,
}


def long_op(r, sim):
    """One random call for `sim`, arguments chosen from its state with random.Random r."""
    live = pids(sim)
    if not live:
        return ("spawn", (), {})
    kind = r.choices(list(LONG_WEIGHTS), weights=list(LONG_WEIGHTS.values()))[0]
    pid = r.choice(live)
    if kind == "fork":
        return ("fork", (pid,), {}) if len(live) < MAX_PROCS else ("exit", (pid,), {})
    if kind == "exit":
        return ("exit", (pid,), {}) if len(live) > 1 else ("fork", (pid,), {})
    if kind == "exec":
        return ("exec", (pid,), {})
    if kind == "swap":
        return ("try_to_unmap", (None,), {})
    if kind == "swapin":
        swapped = sorted(k for k, v in entry_kinds(sim).items() if v == SWAP)
        if swapped:
            p, a = r.choice(swapped)
            return ("touch", (p, a, PAGE), {"write": r.random() < 0.5})
        kind = "touch"
    vs = vmas(sim, pid)
    if kind == "mmap" or not vs:
        slot = r.randrange(LONG_WINDOW)
        n = r.randint(1, min(4, LONG_WINDOW - slot))
        return ("mmap", (pid, n * PAGE), {"addr": LONG_LO + slot * PAGE, "prot": r.choice(["rw", "rw", "r"])})
    v = r.choice(vs)
    size = (v["end"] - v["start"]) // PAGE
    off = r.randrange(size)
    n = r.randint(1, size - off)
    a = v["start"] + off * PAGE
    if kind == "split":
        return ("madvise", (pid, a, n * PAGE, r.choice(["random", "sequential"])), {})
    if kind == "merge":
        # MADV_NORMAL over the whole run of adjacent VMAs around v
        lo = hi = vs.index(v)
        while lo > 0 and vs[lo - 1]["end"] == vs[lo]["start"]:
            lo -= 1
        while hi + 1 < len(vs) and vs[hi]["end"] == vs[hi + 1]["start"]:
            hi += 1
        return ("madvise", (pid, vs[lo]["start"], vs[hi]["end"] - vs[lo]["start"], "normal"), {})
    if kind == "touch":
        return ("touch", (pid, a, n * PAGE), {"write": r.random() < 0.8})
    if kind == "mprotect":
        return ("mprotect", (pid, a, n * PAGE, r.choice(["r", "rw"])), {})
    if kind == "munmap":
        return ("munmap", (pid, a, n * PAGE), {})
    if kind == "mremap":
        slot = r.randrange(LONG_WINDOW)
        m = r.randint(1, min(4, LONG_WINDOW - slot))
        if r.random() < 0.7:
            return ("mremap", (pid, a, n * PAGE, m * PAGE), {"may_move": True, "new_addr": LONG_LO + slot * PAGE})
        return ("mremap", (pid, a, n * PAGE, m * PAGE), {"may_move": r.random() < 0.5, "new_addr": None})
    assert kind == "advice", kind
    return ("madvise", (pid, a, n * PAGE, r.choice(["dontneed", "pageout", "dontfork", "dofork"])), {})


LONG_START = (
    ("spawn", (), {}),
    ("mmap", (1, 8 * PAGE), {"addr": LONG_LO, "prot": "rw"}),
    ("touch", (1, LONG_LO, 8 * PAGE), {"write": True}),
)

# (runs, steps per run) of the long runs, per hypothesis profile (conftest): the fast profile
# gives 6.18 and 6.0 a few hundred steps each, 3.19 enough runs to break several times
LONG_PLAN = {
    "fast": {"sound": (2, 150), "3.19": (300, 120)},
    "slow": {"sound": (40, 600), "3.19": (3000, 200)},
}
LONG_STATS = {
    "3.19": {"runs": 0, "broke": 0, "at": [], "invariants": Counter(), "replays": 0, "diverged": 0, "later": Counter()}
}
LONG_AFTER_BREAK = 40  # steps 3.19 goes on after its break


def _long_plan():
    return LONG_PLAN["slow" if os.environ.get("RMAPSIM_HYPOTHESIS_PROFILE") == "slow" else "fast"]


def _apply_logged(sim, op, log):
    log.append(op)
    return apply_op(sim, op)


def long_run_sound(era, seed, steps):
    """One long random run of a sound era, every oracle after every step; then every
    process exits and nothing may be left (invariant 6, docs/contract.md#invariants)."""
    r = random.Random(seed)
    sim = rmapsim.Simulator(era=era, seed=0)
    log = []
    apart = {}  # see check_vma_rules
    try:
        for op in LONG_START:
            _apply_logged(sim, op, log)
        for _ in range(steps):
            op = long_op(r, sim)
            res = _apply_logged(sim, op, log)
            assert res != ("error", "InvariantViolation"), res
            if op[0] == "fork" and res[0] == "ok":
                apart[res[1]] = dict(apart.get(op[1][0], {}))
            sim.check()
            apart = {pid: check_vma_rules(sim, pid, era, apart.get(pid)) for pid in pids(sim)}
            check_rmap(sim, era=era)
        for pid in pids(sim):
            sim.exit(pid)
        sim.check()
        assert all(v == 0 for v in counts(sim).values()), counts(sim)
    except AssertionError as e:
        raise AssertionError(f"{era} seed {seed} after {len(log)} calls: {e}\ncalls: {log}") from e


def long_run_3_19(seed, steps):
    """Drive 3.19 until check() reports its bug (or `steps` pass). When it breaks: only
    invariant 4 first, and the same calls on 6.0 pass check() after every one, with the same
    results and the same page tables (the bug is in the rmap). Returns the step of the break
    or None."""
    r = random.Random(seed)
    sim = rmapsim.Simulator(era="3.19", seed=0)
    log, results = [], []
    for op in LONG_START:
        results.append(_apply_logged(sim, op, log))
    for i in range(steps):  # noqa: B007 (the count is returned)
        results.append(_apply_logged(sim, long_op(r, sim), log))
        try:
            sim.check()
        except rmapsim.InvariantViolation as e:
            n = invariant_number(e)
            assert n == FIRST_BREAK["3.19"], f"3.19 seed {seed} broke with invariant {n}: {e}\ncalls: {log}"
            LONG_STATS["3.19"]["invariants"][n] += 1
            break
    else:
        return None
    # replay on 6.0, side by side with 3.19 again: 6.0 passes check() after every call; the
    # two agree on every result and on the page tables (the bug is in the rmap) -- unless
    # 3.19 merged VMAs 6.0 keeps apart first (see coarser), after which calls may act
    # differently
    again = rmapsim.Simulator(era="3.19", seed=0)
    shadow = rmapsim.Simulator(era="6.0", seed=0)
    diverged = None
    for k, op in enumerate(log):
        r19, r60 = apply_op(again, op), apply_op(shadow, op)
        shadow.check()
        if diverged is None:
            where = f"3.19 seed {seed}, call {k} {op}: "
            assert r19 == r60 == results[k], where + f"3.19 -> {r19}, 6.0 -> {r60}"
            if vma_boundaries(again) != vma_boundaries(shadow):
                assert coarser(again, shadow), where + "VMAs cut differently"
                assert page_level_state(again) == page_level_state(shadow), where + "page tables differ"
                # the reason: before this call 3.19 had given one anon_vma to two VMAs of
                # one mm, with identical chains, where 6.0 has two
                before = [rmapsim.Simulator(era=e, seed=0) for e in ("3.19", "6.0")]
                for x in before:
                    for o in log[:k]:
                        apply_op(x, o)
                shared = extra_sharing(*before)
                assert shared and all(same for *_, same in shared), where + f"merged without cause: {shared}"
                diverged = k
    if diverged is None:
        assert page_level_state(shadow) == page_level_state(sim), f"3.19 seed {seed}: page tables differ"
        HandleMap().learn(sim, shadow)  # and its pages correspond one to one
    else:
        LONG_STATS["3.19"]["diverged"] += 1
    check_rmap(shadow, era="6.0")
    # 6.18 too passes the sequence (its merge rule may cut VMAs differently, so results may
    # differ where VMA boundaries matter; where none did, so do the page tables)
    newest = rmapsim.Simulator(era="6.18", seed=0)
    same = True
    for op, res in zip(log, results):
        same &= apply_op(newest, op) == res
        newest.check()
    if same:
        # pgoffs aside: a VMA 6.18 gave an anon_vma by merging (dup_anon_vma) keeps its pgoff
        # when moved, where 3.19 gives the unfaulted one new_addr >> 12 (copy_vma)
        a, b = page_level_state(newest, full=False), page_level_state(sim, full=False)
        for x in (a, b):
            x["pages"] = {p: {k: v[:2] for k, v in lay.items()} for p, lay in x["pages"].items()}
        assert a == b, f"3.19 seed {seed}: 6.18 differs"
    check_rmap(newest, era="6.18")
    LONG_STATS["3.19"]["replays"] += 1
    # and 3.19 goes on: in consequence of the shared anon_vma, check() may now also find
    # mappings no walk reaches (1) or a freed page->mapping (2), nothing else; an operation
    # may detect a use-after-free itself (then stop)
    for _ in range(LONG_AFTER_BREAK):
        op = long_op(r, sim)
        if apply_op(sim, op) == ("error", "InvariantViolation"):
            LONG_STATS["3.19"]["later"]["use-after-free detected by " + op[0]] += 1
            break
        try:
            sim.check()
        except rmapsim.InvariantViolation as e:
            n = invariant_number(e)
            assert n in BUGGY_BREAKS["3.19"], f"3.19 seed {seed} after its break, {op}: {e}"
            LONG_STATS["3.19"]["later"][n] += 1
        else:
            LONG_STATS["3.19"]["later"]["ok"] += 1
    return i


def test_long_runs():
    """6.18 and 6.0 survive long random runs with every check after every step; 3.19 breaks
    only the way its degree-based reuse does (invariant 4, CVE-2022-42703), and every
    sequence that breaks it passes on 6.0 (and 6.18). `pytest -s` prints how often 3.19
    broke."""
    plan = _long_plan()
    runs, steps = plan["sound"]
    for era in ("6.18", "6.0"):
        for seed in range(runs):
            long_run_sound(era, seed, steps)
    runs19, steps19 = plan["3.19"]
    st19 = LONG_STATS["3.19"]
    broke = 0
    for seed in range(runs19):
        at = long_run_3_19(seed, steps19)
        st19["runs"] += 1
        if at is not None:
            broke += 1
            st19["broke"] += 1
            st19["at"].append(at)
    at = sorted(st19["at"])
    print(
        f"\nlong runs: 6.18 and 6.0 passed {runs} x {steps} steps each; 3.19 broke in {broke} of "
        f"{runs19} runs of up to {steps19} steps (by invariant: {dict(st19['invariants'])}"
        + (f", after {at[0]}..{at[-1]} steps, median {at[len(at) // 2]}" if at else "")
        + f"); 6.0 and 6.18 passed all {st19['replays']} replays (in {st19['diverged']} of them 3.19 "
        f"had first merged VMAs that 6.0 keeps apart, sharing an anon_vma with identical chains); "
        f"check() of 3.19 in the {LONG_AFTER_BREAK} steps after each break: {dict(st19['later'])}"
    )
    # the generator reaches the bug: about one run in seven breaks, so a fast-profile run
    # without a break means it lost its reach
    assert broke >= 3
