"""MADV_FREE and the per-entry dirty bits against an independent oracle: a hand-written model
of one address in a tree of processes (each process's entry: none, the zero page, or a page
with its write and dirty bits; each page: mapcount, lazy-free, PG_dirty), driven with the
simulator by random sequences of writes, reads, forks, exits, remaps, MADV_FREE and reclaim.

The model's rules are the kernel's (the 6.18.2 tree's line numbers):

* mm/memory.c ``do_anonymous_page`` (5134-5247): a write maps a new page writable and
  dirty, a read the zero page; ``do_wp_page``: a write to the zero page or to a page mapped
  elsewhere too copies it (``wp_page_copy``, 3658-3807: new page, dirty entry); a page
  mapped only here is reused (``wp_page_reuse``, 3564-3591: writable, dirty); a write
  through a writable entry sets its dirty bit (the hardware).
* mm/memory.c ``__copy_present_ptes`` (fork, 1081-1102): the entry is copied,
  write-protected in both, its dirty bit kept (private mapping); ``vma_needs_copy`` (1464-1488):
  nothing is copied from a VMA without an anon_vma (one only read: the child's fault maps
  the zero page again).
* mm/madvise.c ``madvise_free_pte_range`` (655-787): a PG_dirty page must be mapped once
  (else skipped) and loses PG_dirty; the caller's entry is cleaned and the page marked
  lazy-free (shared or not).
* mm/rmap.c ``try_to_unmap_one`` (1865-2249) on a lazy-free page, mappings in walk order
  (the page's anon_vma's interval tree: equal keys in insertion order, i.e. the processes
  in creation order): a clean mapping is discarded; at the first dirty entry (or PG_dirty)
  the walk aborts, the page swap-backed again with PG_dirty (2117-2158). A page with no
  mapping left is freed.

After every step each process's entry (kind, which page), each page's mapcount and
``page_info``'s ``lazyfree`` / ``dirty`` (lazy-free with a dirty entry) must agree."""

from __future__ import annotations

import random

import pytest

import rmapsim

from helpers import layout_states

P = 4096
A = 0x1000_0000


class Model:
    def __init__(self):
        self.entry = {}  # pid -> None | "zero" | [page, writable, dirty]
        self.has_av = {}  # pid -> its VMA has an anon_vma (a write fault prepared one, or fork)
        self.pages = {}  # page -> {"map": n, "lazy": bool, "pgdirty": bool}
        self.next_page = 0

    def new_page(self):
        self.next_page += 1
        self.pages[self.next_page] = {"map": 1, "lazy": False, "pgdirty": False}
        return self.next_page

    def drop(self, pid):
        e = self.entry.get(pid)
        if isinstance(e, list):
            pg = self.pages[e[0]]
            pg["map"] -= 1
            if pg["map"] == 0:
                del self.pages[e[0]]
        self.entry[pid] = None

    def write(self, pid):
        self.has_av[pid] = True
        e = self.entry[pid]
        if e is None or e == "zero":
            self.entry[pid] = [self.new_page(), True, True]
        elif e[1]:
            e[2] = True
        elif self.pages[e[0]]["map"] == 1:
            e[1] = e[2] = True  # reuse
        else:
            self.pages[e[0]]["map"] -= 1
            self.entry[pid] = [self.new_page(), True, True]  # copy

    def read(self, pid):
        if self.entry[pid] is None:
            self.entry[pid] = "zero"

    def fork(self, parent, child):
        e = self.entry[parent]
        self.has_av[child] = self.has_av[parent]
        if not self.has_av[parent]:
            self.entry[child] = None
        elif isinstance(e, list):
            e[1] = False
            self.pages[e[0]]["map"] += 1
            self.entry[child] = list(e)
        else:
            self.entry[child] = e

    def free(self, pid):
        e = self.entry[pid]
        if not isinstance(e, list):
            return
        pg = self.pages[e[0]]
        if pg["pgdirty"]:
            if pg["map"] != 1:
                return
            pg["pgdirty"] = False
        e[2] = False
        pg["lazy"] = True

    def reclaim(self, page):
        pg = self.pages[page]
        for pid in sorted(self.entry):
            e = self.entry[pid]
            if not (isinstance(e, list) and e[0] == page):
                continue
            if e[2] or pg["pgdirty"]:
                pg["lazy"], pg["pgdirty"] = False, True
                return
            self.drop(pid)
            if page not in self.pages:
                return


def compare(sim, model, handle):
    for pid, e in model.entry.items():
        got = sim.page_at(pid, A)
        if isinstance(e, list):
            if e[0] not in handle:
                handle[e[0]] = got
            assert got == handle[e[0]], (pid, e)
        else:
            assert got is None, (pid, e)
            assert layout_states(sim, pid)[A] == ("z" if e == "zero" else "."), (pid, e)
    for page, pg in model.pages.items():
        info = sim.page_info(handle[page])
        dirty = pg["lazy"] and any(isinstance(e, list) and e[0] == page and e[2] for e in model.entry.values())
        assert (info["mapcount"], info["lazyfree"], info["dirty"]) == (pg["map"], pg["lazy"], dirty), page


def run(seed, era, steps=40):
    rng = random.Random(seed)
    sim = rmapsim.Simulator(era=era)
    model = Model()
    root = sim.spawn()
    sim.mmap(root, P, addr=A)
    model.entry[root] = None
    model.has_av[root] = False
    handle = {}
    log = []
    for _ in range(steps):
        pids = sorted(model.entry)
        pid = rng.choice(pids)
        lazy = [pg for pg, st in model.pages.items() if st["lazy"]]
        op = rng.choice(["write", "write", "read", "fork", "free", "free", "unmap", "exit", "reclaim", "reclaim"])
        if op == "fork" and len(pids) >= 5 or op == "exit" and pid == root or op == "reclaim" and not lazy:
            op = "write"
        log.append((op, pid))
        if op in ("write", "read"):
            sim.touch(pid, A, P, write=op == "write")
            getattr(model, op)(pid)
        elif op == "fork":
            child = sim.fork(pid)
            model.fork(pid, child)
        elif op == "free":
            sim.madvise(pid, A, P, "free")
            model.free(pid)
        elif op == "unmap":
            sim.munmap(pid, A, P)
            sim.mmap(pid, P, addr=A)
            model.drop(pid)
            model.has_av[pid] = False
        elif op == "exit":
            sim.exit(pid)
            model.drop(pid)
            del model.entry[pid]
        else:
            page = rng.choice(lazy)
            log[-1] = (op, page)
            sim.try_to_unmap([handle[page]])
            model.reclaim(page)
        try:
            compare(sim, model, handle)
        except AssertionError as e:
            raise AssertionError(f"seed {seed} after {log}: {e}") from e
    sim.check()


@pytest.mark.parametrize("era", ["6.0", "6.18"])
def test_random_sequences_agree_with_the_model(era):
    for seed in range(150):
        run(seed, era)
