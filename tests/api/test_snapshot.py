"""Snapshots (Simulator.to_bytes / from_bytes, and pickle through them): the documented
envelope, refusals of anything that is not a snapshot of this format version, and that a
refused restore changes nothing. Future behaviour after a round trip is tested in
test_clone.py over random runs in every era."""

from __future__ import annotations

import copy
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
    assert magic == b"RMAPSNAP" and version == 3
    assert n == len(b) - 20 - 8, "payload length, then an 8-byte checksum"
    # The payload opens with the writer's version, then the era spec (length-prefixed).
    vlen = b[20]
    assert b[21 : 21 + vlen].decode() == rmapsim.__version__
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


def test_copies_and_pickles_keep_a_subclass_s_attributes():
    """A subclass instance's own attributes were silently dropped by pickle, copy.copy,
    copy.deepcopy and clone() (only the core state came back). They come along now; a
    deep copy copies them deeply, and the event log of the last apply stays behind."""
    sim = Mine(era="6.0")
    p = sim.spawn()
    sim.apply("# rmapsim trace v1\nspawn\n", events=True)
    sim.note, sim.params = "run 7", {"children": [1, 2]}
    for how, back in (
        ("pickle", pickle.loads(pickle.dumps(sim))),
        ("copy", copy.copy(sim)),
        ("deepcopy", copy.deepcopy(sim)),
        ("clone", sim.clone()),
    ):
        assert type(back) is Mine and back.note == "run 7" and back.params == {"children": [1, 2]}, how
        assert back.events() is None and back.fork(p) == sim.clone().fork(p), how
    deep = copy.deepcopy(sim)
    deep.params["children"].append(3)
    assert sim.params == {"children": [1, 2]}
    plain = rmapsim.Simulator()
    assert pickle.loads(pickle.dumps(plain)).__dict__ == {}


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
    v4 = good[:8] + struct.pack("<I", 4) + good[12:]
    msg = refused(v4)
    assert "format version 4" in msg and "reads version 3" in msg
    assert "truncated" in refused(good[:-1]) or "payload" in refused(good[:-1])
    assert "truncated" in refused(good[:24])
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10
    assert "checksum" in refused(bytes(flipped))
    assert "follow it" in refused(good + b"\0")


def test_unpickling_refuses_a_non_simulator_class():
    with pytest.raises(rmapsim.InvalidArgument, match="cls"):
        rmapsim._restore_simulator(dict, built().to_bytes())


_M = (1 << 64) - 1


def _checksum(data: bytes) -> int:
    """The payload checksum, written again from its description in rust/core/src/state/snapshot.rs
    (each 8-byte word, the tail zero-padded, mixed with a multiply and a 29-bit rotate,
    then the length through a splitmix finaliser), to alter a payload behind it."""
    h = 0x5241_4D50_534E_4150
    rot = lambda x: ((x << 29) | (x >> 35)) & _M  # noqa: E731
    words = len(data) // 8
    for i in range(words + 1):
        w = int.from_bytes(data[8 * i : 8 * i + 8].ljust(8, b"\0"), "little")
        h = rot(((h ^ w) * 0x9E37_79B9_7F4A_7C15) & _M)
    z = h ^ len(data)
    z = ((z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9) & _M
    z = ((z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB) & _M
    return z ^ (z >> 31)


def _uvar(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _read_uvar(b: bytes, i: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        shift += 7
        if x < 0x80:
            return v, i


def test_a_dense_page_table_cannot_claim_more_entries_than_any_vma_has():
    """A few hundred bytes claiming a dense page table of 2^24 entries (the VMA has 7
    pages) were decoded into 128 MiB of empty entries (2^27 gave 1 GiB) and passed
    check(): a length the decoder trusted. Resealed with the checksum, it is refused."""
    sim = rmapsim.Simulator(era="6.18", seed=1)
    p = sim.spawn()
    a = sim.mmap(p, 7 * 4096)
    sim.touch(p, a, 7 * 4096)
    b = sim.to_bytes()
    payload = b[20:-8]
    assert _checksum(payload) == int.from_bytes(b[-8:], "little"), "the helper is the format's checksum"
    # The VMA's table: dense length 7, base page number, then 7 x (gap 0, page, flags), final gap 0.
    head = _uvar(7) + _uvar(a >> 12)
    at = payload.find(head)
    assert at >= 0 and payload.find(head, at + 1) < 0
    j = at + len(head)
    for _ in range(7):
        gap, j = _read_uvar(payload, j)
        assert gap == 0
        j = _read_uvar(payload, _read_uvar(payload, j)[1])[1]
    gap, k = _read_uvar(payload, j)
    assert gap == 0
    extra = 1 << 24
    crafted = (
        payload[:at] + _uvar(7 + extra) + _uvar(a >> 12) + payload[at + len(head) : j] + _uvar(extra) + payload[k:]
    )
    data = b[:12] + struct.pack("<Q", len(crafted)) + crafted + struct.pack("<Q", _checksum(crafted))
    assert len(data) < 400
    with pytest.raises(rmapsim.InvalidArgument, match="dense page table claims 16777223 entries"):
        rmapsim.Simulator.from_bytes(data)
