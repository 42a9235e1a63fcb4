"""Snapshots (Simulator.to_bytes / from_bytes, and pickle through them): the documented
envelope, refusals of anything that is not a snapshot of this format version, and that a
refused restore changes nothing. Future behaviour after a round trip is tested in
test_clone.py over random runs in every era."""

from __future__ import annotations

import pickle
import struct

import pytest

import rmapsim


def built(era: str = "6.18") -> rmapsim.Simulator:
    sim = rmapsim.Simulator(era=era, seed=1)
    p = sim.spawn()
    a = sim.mmap(p, 256 * 4096)
    sim.touch(p, a, 256 * 4096)
    sim.touch_many(sim.fork_many(p, 3), a, 64 * 4096)
    return sim


def test_the_envelope_is_as_documented():
    b = built().to_bytes()
    magic, version, n = struct.unpack_from("<8sIQ", b)
    assert magic == b"RMAPSNAP" and version == 1
    assert n == len(b) - 20 - 8, "payload length, then an 8-byte checksum"
    # The payload opens with the writer's version, then the era spec (length-prefixed).
    vlen = b[20]
    assert b[21:21 + vlen].decode() == rmapsim.__version__
    # (the name, "6.18*"-style label, comes first, then the canonical spec)


def test_bytes_grow_with_populated_entries_not_the_mapped_range():
    small, big = rmapsim.Simulator(), rmapsim.Simulator()
    for sim, length in ((small, 1 << 20), (big, 1 << 40)):
        p = sim.spawn()
        a = sim.mmap(p, length)
        sim.touch(p, a, 16 * 4096)
    assert abs(len(big.to_bytes()) - len(small.to_bytes())) < 64


def test_a_restored_snapshot_is_byte_identical_when_written_again():
    sim = built("3.19")
    b = sim.to_bytes()
    assert rmapsim.Simulator.from_bytes(b).to_bytes() == b
    assert rmapsim.Simulator.from_bytes(bytearray(b)).to_bytes() == b
    assert rmapsim.Simulator.from_bytes(memoryview(b)).to_bytes() == b


class Mine(rmapsim.Simulator):
    pass


def test_pickle_keeps_the_subclass():
    sim = Mine(era="6.0")
    sim.spawn()
    back = pickle.loads(pickle.dumps(sim))
    assert type(back) is Mine and back.pids().tolist() == [1]


def refused(data: object) -> str:
    target = built("2.6.33")
    before = (target.to_bytes(), target.era)
    with pytest.raises(rmapsim.InvalidArgument) as e:
        target._restore(data) if isinstance(data, bytes) else rmapsim.Simulator.from_bytes(data)  # type: ignore[arg-type]
    assert (target.to_bytes(), target.era) == before, "a refused restore changes nothing"
    with pytest.raises(rmapsim.InvalidArgument):
        rmapsim.Simulator.from_bytes(data)  # type: ignore[arg-type]
    return str(e.value)


def test_refusals_name_what_is_wrong():
    good = built().to_bytes()
    assert "not an rmapsim snapshot" in refused(b"hello world, not a snapshot")
    assert "not an rmapsim snapshot" in refused(b"")
    assert "expected bytes" in refused("RMAPSNAP")
    v2 = good[:8] + struct.pack("<I", 2) + good[12:]
    msg = refused(v2)
    assert "format version 2" in msg and "reads version 1" in msg
    assert "truncated" in refused(good[:-1]) or "payload" in refused(good[:-1])
    assert "truncated" in refused(good[:24])
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10
    assert "checksum" in refused(bytes(flipped))
    assert "follow it" in refused(good + b"\0")


def test_unpickling_refuses_a_non_simulator_class():
    with pytest.raises(rmapsim.InvalidArgument, match="cls"):
        rmapsim._restore_simulator(dict, built().to_bytes())
