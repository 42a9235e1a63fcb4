"""Every era since 2010 (issue 4): policies as data, root locking, interval trees, fork
reuse and its 2022 fix, write-side statistics. Expected values are derived by hand from
each era's rules (docs/design.md, docs/eras.md), not from running the code.
"""

from __future__ import annotations

import pytest

import rmapsim

from helpers import ALL, EVERY_ERA, P


def test_presets_and_default():
    assert ALL == list(EVERY_ERA)  # the hand-written list of helpers.py
    assert rmapsim.DEFAULT_ERA == "6.18"
    assert rmapsim.Simulator().era == "6.18"


def test_every_knob_is_documented_with_its_kernel_change():
    ks = rmapsim.knobs()
    names = [k.name for k in ks]
    assert len(set(names)) == len(names) >= 15
    for k in ks:
        assert k.meaning and k.kernel, k
    for era in ALL:
        assert set(rmapsim.Policy.preset(era).as_dict()) == set(names)


def test_policy_knobs_follow_the_history():
    pol = {e: rmapsim.Policy.preset(e) for e in ALL}
    assert pol["2.6.33"]["linking"] == "legacy" and pol["2.6.34"]["linking"] == "chain"
    assert pol["2.6.34"]["track_root"] == "false" and pol["2.6.35"]["track_root"] == "true"
    assert [pol[e]["lock_kind"] for e in ("2.6.35", "3.0", "3.7", "3.8")] == ["spin", "mutex", "mutex", "rwsem"]
    assert pol["3.0"]["index"] == "list" and pol["3.7"]["index"] == "interval_tree"
    assert [pol[e]["fork_reuse"] for e in ("3.8", "3.19", "6.0", "6.18")] == [
        "never",
        "degree",
        "active_vmas",
        "active_vmas",
    ]
    assert pol["6.0"]["merge_rule"] != pol["6.18"]["merge_rule"] == "case_2025"
    sizes = [(pol[e]["size_vm_area_struct"], pol[e]["size_anon_vma"], pol[e]["size_anon_vma_chain"]) for e in ALL]
    # docs/contract.md#struct-sizes table
    assert sizes == [
        ("176", "24", "0"),
        ("176", "24", "48"),
        ("176", "24", "48"),
        ("176", "32", "48"),
        ("176", "64", "48"),
        ("184", "56", "64"),
        ("184", "56", "64"),
        ("200", "72", "64"),
        ("200", "96", "64"),
        ("192", "96", "64"),
        # 7.0-rc1, 7.0: struct anon_vma and anon_vma_chain read the same in 7.0-rc6 (not measured)
        ("192", "96", "64"),
        ("192", "96", "64"),
    ]


def test_policy_overrides_ablate_one_knob():
    p = rmapsim.Policy.preset("6.0").replace(fork_reuse="never", size_anon_vma=100)
    assert p.overrides() == {"fork_reuse": "never", "size_anon_vma": "100"}
    sim = rmapsim.Simulator(policy=p)
    assert sim.era == "6.0+fork_reuse=never,size_anon_vma=100" and sim.policy()["fork_reuse"] == "never"
    assert str(p) == sim.era and rmapsim.Policy.parse(sim.era) == p
    assert repr(p) == "Policy('6.0', fork_reuse='never', size_anon_vma='100')"
    a = sim.spawn()
    addr = sim.mmap(a, P)
    sim.touch(a, addr, P)
    assert sim.memory()["anon_vma"] == 100
    # the dict form overrides the named era
    sim2 = rmapsim.Simulator(era="3.8", policy={"lock_kind": "spin"})
    assert sim2.policy()["lock_kind"] == "spin" and sim2.policy()["index"] == "interval_tree"


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"index": "btree"}, "interval_tree"),
        ({"nope": "1"}, "unknown knob .nope."),
        ({"track_root": "maybe"}, "true or false"),
        ({"size_anon_vma": "-3"}, "byte count"),
    ],
)
def test_bad_knobs_are_refused(kw, msg):
    with pytest.raises(rmapsim.InvalidArgument, match=msg):
        rmapsim.Simulator(era="6.18", policy=kw)


def test_inconsistent_knobs_are_refused():
    with pytest.raises(rmapsim.InvalidArgument, match="needs track_root"):
        rmapsim.Simulator(era="2.6.34", policy={"lock_scope": "root"})
    with pytest.raises(rmapsim.InvalidArgument, match="needs linking=Chain"):
        rmapsim.Simulator(era="2.6.33", policy={"index": "interval_tree"})
    with pytest.raises(rmapsim.InvalidArgument, match="contradicts"):
        rmapsim.Simulator(era="3.0", policy=rmapsim.Policy.preset("6.0"))
