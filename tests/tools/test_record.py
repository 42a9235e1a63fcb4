"""rmapsim record / replay --memory: strace logs to traces, ELF images, memory over time."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import rmapsim
from rmapsim import record
from rmapsim.cli import main

EXE = sys.executable


def log(*lines: str) -> str:
    return "\n".join(lines) + "\n"


BASIC = log(
    f'100 execve("{EXE}", ["python"], 0x7ffe /* 3 vars */) = 0',
    "100 brk(NULL)                         = 0x555555600000",
    "100 brk(0x555555621000)               = 0x555555621000",
    "100 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7f00000",
    "100 mmap(NULL, 10000, PROT_READ, MAP_PRIVATE, 3</usr/lib/libfoo.so>, 0) = 0x7ffff7e00000",
    "100 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS, -1, 0) = 0x7ffff7d00000",
    "100 mmap(NULL, 1048576, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = -1 ENOMEM (Cannot allocate memory)",
    "100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 101",
    "101 mprotect(0x7ffff7f00000, 4096, PROT_READ) = 0",
    "100 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, stack=0x7f}, 88) = 102",
    "102 madvise(0x7ffff7f00000, 8192, MADV_DONTNEED) = 0",
    "102 madvise(0x7ffff7f00000, 8192, MADV_COLD) = 0",
    "100 vfork( <unfinished ...>",
    '103 execve("/nonexistent/tool", ["tool"], 0x5555 /* 3 vars */) = -1 ENOENT (No such file or directory)',
    f'103 execve("{EXE}", ["python"], 0x5555 /* 3 vars */ <unfinished ...>',
    "100 <... vfork resumed>)              = 103",
    "103 <... execve resumed>)             = 0",
    "103 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7b00000",
    "103 mremap(0x7ffff7b00000, 4096, 8192, MREMAP_MAYMOVE) = 0x7ffff7a00000",
    "103 exit_group(0)                     = ?",
    "103 +++ exited with 0 +++",
    "102 +++ exited with 0 +++",
    "101 munmap(0x7ffff7e00000, 10000)       = 0",
    "101 +++ exited with 0 +++",
    "100 +++ exited with 0 +++",
)


def ops_of(text: str, writes: str = "touched"):
    ops, stats = record.convert_log(text, writes)
    return ops, stats


def test_processes_threads_and_vfork():
    ops, stats = ops_of(BASIC)
    heads = [o for o in ops if o.split()[0] in ("spawn", "fork", "exec", "exit")]
    # p1: the command; p2: its fork; the thread 102 shares p1; the vfork child 103 borrows
    # p1's mm until its (second, successful) execve, which makes p3
    assert heads == ["spawn", "exec p1", "fork p1", "spawn", "exit p3", "exit p2", "exit p1"]
    assert stats["processes"] == 3
    assert "mprotect p2 0x7ffff7f00000 0x1000 r" in ops  # the fork child's call is its own
    assert "madvise p1 0x7ffff7f00000 0x2000 dontneed" in ops  # the thread's call is p1's
    assert stats["skipped"]["madvise MADV_COLD (no rmap effect modelled)"] == 1
    assert stats["skipped"]["mmap failed"] == 1
    assert stats["skipped"]["execve failed"] if "execve failed" in stats["skipped"] else True
    assert "mremap p3 0x7ffff7b00000 0x1000 0x2000 move 0x7ffff7a00000" in ops


def test_mappings_files_and_brk():
    ops, stats = ops_of(BASIC)
    assert ops.index("brkbase p1 0x555555600000") < ops.index("brk p1 0x555555621000")
    assert "mmap p1 0x7ffff7f00000 0x2000 rw" in ops
    assert "touch p1 0x7ffff7f00000 0x1000 w" in ops  # writes=touched: first page
    libfoo = [o for o in ops if o.startswith("mmap p1 0x7ffff7e00000")]
    assert len(libfoo) == 1 and libfoo[0].startswith("mmap p1 0x7ffff7e00000 0x3000 r file ")
    shared = [o for o in ops if o.startswith("mmap p1 0x7ffff7d00000")]
    assert len(shared) == 1 and " file " in shared[0]  # shared memory: never anonymous rmap
    assert not any(o.startswith("touch p1 0x7ffff7d00000") for o in ops)
    assert "munmap p2 0x7ffff7e00000 0x3000" in ops


def test_writes_assumption():
    none, _ = ops_of(BASIC, "none")
    assert not any(o.startswith("touch") for o in none)
    allw, _ = ops_of(BASIC, "all")
    assert "touch p1 0x7ffff7f00000 0x2000 w" in allw
    with pytest.raises(rmapsim.InvalidArgument, match="writes must be one of touched, all, none, got 'some'"):
        record.convert_log(BASIC, "some")


def test_converted_trace_replays_cleanly_in_every_era():
    ops, _ = ops_of(BASIC)
    text = "# rmapsim trace v1\n" + "\n".join(ops) + "\n"
    for era in rmapsim.eras():
        sim = rmapsim.Simulator(era=era)
        res = sim.apply(text, check_each=True)
        assert res.violation() is None, era
        assert res.errors() == [], (era, res.errors())
        assert sim.counts()["vma"] == 0 and sim.counts()["anon_vma"] == 0  # everyone exited


def _maps_no_aslr(path: str) -> str:
    def no_aslr():
        ctypes.CDLL(None).personality(record.ADDR_NO_RANDOMIZE)

    return subprocess.run([path, "/proc/self/maps"], capture_output=True, text=True, preexec_fn=no_aslr).stdout


@pytest.mark.skipif(shutil.which("cat") is None, reason="no cat binary to compare with")
def test_elf_image_matches_the_kernels_layout():
    """Oracle: the file-backed mappings execve + ld.so make for `cat` without randomisation,
    read from its own /proc/self/maps, start with what image_for rebuilds from the ELF
    headers: same ranges for the executable, its interpreter and vvar/vdso."""
    cat = shutil.which("cat")
    real = {}
    for line in _maps_no_aslr(cat).splitlines():
        f = line.split()
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        name = f[5] if len(f) > 5 else ""
        real[lo] = (hi, name)
    img = record.image_for(cat)
    named = [s for s in img if s.file]
    assert named, "no file segments rebuilt"
    for s in named:
        assert s.start in real, f"{s} not at a mapping start of the real process"
        hi, name = real[s.start]
        assert hi == s.end or name.startswith("/"), (s, hi, name)  # RELRO may split a data segment later
        if s.file.startswith("["):
            assert name == s.file
    stack = [s for s in img if s.start == record.STACK[0]]
    assert stack and any(name == "[stack]" for _, name in real.values())


def test_apply_sampling():
    sim = rmapsim.Simulator(era="6.18")
    text = "# rmapsim trace v1\nspawn\nmmap p1 0x10000000 0x4000 rw\ntouch p1 0x10000000 0x4000 w\nfork p1\nfork p1\nexit p2\nexit p3\n"
    res = sim.apply(text, sample_every=3)
    s = res.samples
    assert s.dtype.names == rmapsim.SAMPLE_FIELDS
    assert list(s["ops"]) == [3, 6, 7]
    assert list(s["processes"]) == [1, 2, 1]
    assert list(s["vma"]) == [1, 2, 1] and list(s["anon_vma"]) == [1, 2, 1]
    assert list(s["anon_vma_chain"]) == [1, 3, 1]
    sizes = rmapsim.Simulator(era="6.18").memory()
    assert sizes["vm_area_struct"] == 0
    assert int(s["vma_bytes"][1]) == 2 * int(s["vma_bytes"][0])
    assert len(sim.apply(text).samples) == 0
    with pytest.raises(
        rmapsim.InvalidArgument, match="sample_every must be an int from 0 to 18446744073709551615, got -1"
    ):
        sim.apply(text, sample_every=-1)


def test_memory_report_ratio():
    text = "# rmapsim trace v1\nspawn\nmmap p1 0x10000000 0x4000 rw\ntouch p1 0x10000000 0x4000 w\nfork p1\nfork p1\nexit p2\nexit p3\nexit p1\n"
    (r,) = record.memory_report(text, ["6.18"], every=1)
    s = r["samples"]
    i = int(np.argmax(s["vma_bytes"]))
    assert r["peak"]["vma"] == 3 and r["peak"]["anon_vma_chain"] == 5
    assert r["ratio_at_peak"] == pytest.approx(s["anon_vma_chain_bytes"][i] / s["vma_bytes"][i])
    (old,) = record.memory_report(text, ["2.6.33"], every=1)
    assert old["ratio_at_peak"] == 0.0  # no anon_vma_chain objects before 2.6.34


def test_summarize_kernel():
    sizes = {"anon_vma": 104, "anon_vma_chain": 64, "vm_area_struct": 192}
    samples = [
        {"anon_vma": 1, "anon_vma_chain": 2, "vm_area_struct": 3},
        {"anon_vma": 5, "anon_vma_chain": 30, "vm_area_struct": 60},
        {"anon_vma": 0, "anon_vma_chain": 0, "vm_area_struct": 0},
    ]
    k = record.summarize_kernel(samples, sizes)
    assert k["peak"]["vm_area_struct"] == 60
    assert k["ratio_at_peak"] == pytest.approx(30 * 64 / (60 * 192))
    assert k["ratio_mean"] == pytest.approx((2 * 64 / (3 * 192) + 30 * 64 / (60 * 192)) / 2)


def test_cli_replay_memory(tmp_path, capsys):
    ops, _ = ops_of(BASIC)
    t = tmp_path / "t.trace"
    t.write_text(
        "# rmapsim trace v1\n# kernel-live: peak vm_area_struct 9 anon_vma_chain 3 anon_vma 2; chain/VMA bytes at peak 0.1111 mean 0.1\n"
        + "\n".join(ops)
        + "\n"
    )
    csv = tmp_path / "s.csv"
    assert main(["replay", str(t), "--memory", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    for era in rmapsim.eras():
        assert f"\n{era} " in out
    assert "live kernel during the recorded run: peak vm_area_struct 9" in out
    rows = csv.read_text().splitlines()
    assert rows[0].startswith("era,ops,processes,vma,")
    assert len(rows) > len(rmapsim.eras())
    assert main(["record", "--out", str(tmp_path / "x")]) == 2
    assert "no command given" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("")
    assert main(["record", "--out", str(tmp_path / "a-file" / "x"), "--", "true"]) == 2
    assert "a-file is not a directory" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_record_a_real_program(tmp_path, capsys):
    out = tmp_path / "sh" / "record.trace"  # --out DIR writes DIR/record.trace
    assert main(["record", "--out", str(out.parent), "--", "sh", "-c", "true; /bin/true"]) == 0
    text = out.read_text()
    assert text.startswith("# rmapsim trace v1\n# recorded: sh -c true; /bin/true")
    sim = rmapsim.Simulator(era="6.18")
    res = sim.apply(text, check_each=True)
    assert res.violation() is None and res.errors() == []
    assert any(line.startswith("exec p1") for line in text.splitlines())
    assert sim.counts()["vma"] == 0
    assert main(["record", "--out", str(tmp_path / "f"), "--", "sh", "-c", "exit 3"]) == 1
    assert "exited with status 3" in capsys.readouterr().err


def test_a_script_maps_its_interpreter(tmp_path):
    """binfmt_script: execve of a #! script loads the interpreter's ELF image."""
    script = tmp_path / "s.sh"
    script.write_text(f"#!{EXE} -u\nprint(1)\n")
    assert record.script_interpreter(str(script)) == EXE
    assert [(s.start, s.end, s.prot) for s in record.image_for(str(script))] == [
        (s.start, s.end, s.prot) for s in record.image_for(EXE)
    ]
    plain = tmp_path / "notelf"
    plain.write_text("hello\n")
    with pytest.raises(ValueError, match="not a 64-bit ELF file"):
        record.image_for(str(plain))


def test_thread_execve_pid_change_clone_vm_child_and_pid_reuse():
    text = log(
        f'300 execve("{EXE}", ["python"], 0x7ffe /* 3 vars */) = 0',
        # a thread (CLONE_THREAD) execs: strace reports the pid change to the leader
        "300 clone(child_stack=0x7f, flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM) = 301",
        "301 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7f00000",
        f'301 execve("{EXE}", ["python"], 0x7ffe /* 3 vars */ <pid changed to 300 ...>',
        "300 +++ superseded by execve in pid 301 +++",
        "300 <... execve resumed>)             = 0",
        # a CLONE_VM child that is not a thread borrows the mm until it execs
        "300 clone(child_stack=0x7f, flags=CLONE_VM|SIGCHLD) = 302",
        f'302 execve("{EXE}", ["python"], 0x7ffe /* 3 vars */) = 0',
        "302 +++ exited with 0 +++",
        "300 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7e00000",
        # pid reuse: a thread 303 exits, then 303 is a forked process
        "300 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM}, 88) = 303",
        "303 +++ exited with 0 +++",
        "300 clone(child_stack=NULL, flags=SIGCHLD) = 303",
        "303 munmap(0x7ffff7e00000, 8192)       = 0",
        "303 +++ exited with 0 +++",
        "300 +++ exited with 0 +++",
    )
    ops, stats = ops_of(text)
    heads = [o for o in ops if o.split()[0] in ("spawn", "fork", "exec", "exit")]
    assert heads == ["spawn", "exec p1", "exec p1", "spawn", "exit p2", "fork p1", "exit p3", "exit p1"]
    assert "munmap p3 0x7ffff7e00000 0x2000" in ops
    tr = "# rmapsim trace v1\n" + "\n".join(ops) + "\n"
    sim = rmapsim.Simulator(era="6.18")
    res = sim.apply(tr, check_each=True)
    assert res.errors() == [] and res.violation() is None


def test_relative_execve_follows_chdir(tmp_path):
    text = log(
        f'400 execve("{EXE}", ["python"], 0x7ffe /* 3 vars */) = 0',
        f'400 chdir("{os.path.dirname(EXE)}") = 0',
        f'400 execve("./{os.path.basename(EXE)}", ["python"], 0x7ffe /* 3 vars */) = 0',
        "400 +++ exited with 0 +++",
    )
    ops, stats = record.convert_log(text, cwd="/")
    assert "execve of an unreadable or non-ELF image (stack only)" not in stats["skipped"]
    assert sum(o.startswith("mmap p1 ") and " file " in o for o in ops) >= 2 * 2


def test_brk_growth_and_mprotect_to_writable_are_touched():
    text = log(
        f'500 execve("{EXE}", ["python"], 0x7ffe /* 3 vars */) = 0',
        "500 brk(NULL)                         = 0x555555600000",
        "500 brk(0x555555621000)               = 0x555555621000",
        "500 mmap(NULL, 65536, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK, -1, 0) = 0x7ffff7000000",
        "500 mprotect(0x7ffff7001000, 61440, PROT_READ|PROT_WRITE) = 0",
        "500 +++ exited with 0 +++",
    )
    ops, _ = ops_of(text)
    assert "touch p1 0x555555600000 0x1000 w" in ops
    assert "touch p1 0x7ffff7001000 0x1000 w" in ops
    assert not any(o.startswith("touch p1 0x7ffff7000000") for o in ops)  # PROT_NONE: not written


def test_mmap_base_follows_the_stack_rlimit():
    assert record.mmap_base_for(None) == 0x7FFFF7FFF000  # 8 MiB stack: the 128 MiB minimum gap
    assert record.mmap_base_for(1 << 62) == 0x155555556000  # unlimited: 5/6 of TASK_SIZE
    assert record.mmap_base_for(1 << 30) == 0x7FFFFFFFF000 - (1 << 30) - (1 << 20)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_static_pie_goes_below_mmap_base(tmp_path):
    """An ET_DYN without PT_INTERP is mapped top-down below mmap_base, not at
    ELF_ET_DYN_BASE: checked against the real process's maps."""
    src = tmp_path / "p.c"
    src.write_text(
        '#include <stdio.h>\nint main(void){FILE*f=fopen("/proc/self/maps","r");int c;'
        "while((c=fgetc(f))!=EOF)putchar(c);return 0;}\n"
    )
    exe = tmp_path / "p"
    r = subprocess.run(["cc", "-O2", "-static-pie", "-o", str(exe), str(src)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cc -static-pie failed: {r.stderr.decode()[-200:]}")
    real = {}
    for line in _maps_no_aslr(str(exe)).splitlines():
        f = line.split()
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        real[lo] = (hi, f[5] if len(f) > 5 else "")
    segs = [s for s in record.image_for(str(exe)) if s.file == str(exe)]
    assert segs and all(s.start in real for s in segs), (segs, sorted(real))
    assert segs[0].start > 0x7F0000000000


def test_flag_advice_is_converted_and_splits_vmas():
    text = log(
        f'600 execve("{EXE}", ["python"], 0x7ffe /* 3 vars */) = 0',
        "600 mmap(NULL, 16384, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7000000",
        "600 madvise(0x7ffff7001000, 4096, MADV_NOHUGEPAGE) = 0",
        "600 madvise(0x7ffff7002000, 4096, MADV_DONTDUMP) = 0",
        "600 +++ exited with 0 +++",
    )
    ops, _ = ops_of(text)
    assert "madvise p1 0x7ffff7001000 0x1000 nohugepage" in ops
    assert "madvise p1 0x7ffff7002000 0x1000 dontdump" in ops
    sim = rmapsim.Simulator(era="6.18")
    tr = "# rmapsim trace v1\n" + "\n".join(o for o in ops if not o.startswith("exit")) + "\n"
    assert sim.apply(tr, check_each=True).errors() == []
    p = int(sim.pids()[0])
    got = [(v["start"], v["flags"]) for v in sim.vmas(p) if 0x7FFFF7000000 <= v["start"] < 0x7FFFF7004000]
    assert got == [
        (0x7FFFF7000000, ["account"]),
        (0x7FFFF7001000, ["account", "nohugepage"]),
        (0x7FFFF7002000, ["account", "dontdump"]),
        (0x7FFFF7003000, ["account"]),
    ]


def _marks(flags) -> str:
    """ "ac" (VM_ACCOUNT) / "nr" (VM_NORESERVE) / "nh" (VM_NOHUGEPAGE) as smaps VmFlags
    names them; "-": none of them."""
    names = (("ac", "account"), ("nr", "noreserve"), ("nh", "nohugepage"))
    return " ".join(m for m, f in names if f in flags) or "-"


def test_map_noreserve_and_map_stack_become_trace_words():
    text = log(
        f'700 execve("{EXE}", ["python"], 0x7ffe /* 3 vars */) = 0',
        "700 mmap(NULL, 134217728, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0) = 0x7fffe8000000",
        "700 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|0x4000, -1, 0) = 0x7fffe7000000",
        "700 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, 3</usr/lib/libfoo.so>, 0x2000) = 0x7fffe6000000",
        "700 mmap(0x7fffe6002000, 4096, PROT_READ, MAP_PRIVATE|MAP_FIXED|MAP_NORESERVE, 3</usr/lib/libfoo.so>, "
        "0x4000) = 0x7fffe6002000",
        "700 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_NORESERVE, 4</dev/shm/x>, 0) = 0x7fffe5000000",
        "700 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK, -1, 0) = 0x7fffe4000000",
        "700 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|0x24000, -1, 0) = 0x7fffe3000000",
        "700 mprotect(0x7fffe8000000, 135168, PROT_READ|PROT_WRITE) = 0",
        "700 +++ exited with 0 +++",
    )
    ops, _ = ops_of(text)
    mm = [o for o in ops if o.startswith("mmap p1 0x7fffe")]
    assert mm[0] == "mmap p1 0x7fffe8000000 0x8000000 none noreserve"
    assert mm[1] == "mmap p1 0x7fffe7000000 0x2000 rw noreserve"
    fid = mm[2].split()[6]
    assert mm[2].endswith(f" r file {fid} 0x2000") and mm[3].endswith(f" r file {fid} 0x4000 noreserve")
    assert mm[4].endswith(" 0x0 noreserve") and " file " in mm[4]
    assert mm[5] == "mmap p1 0x7fffe4000000 0x1000 rw stack"  # MAP_STACK
    assert mm[6] == "mmap p1 0x7fffe3000000 0x1000 rw noreserve stack"  # both, as unnamed bits
    sim = rmapsim.Simulator(era="6.18")
    tr = "# rmapsim trace v1\n" + "\n".join(o for o in ops if not o.startswith("exit")) + "\n"
    assert sim.apply(tr, check_each=True).errors() == []
    got = [
        (v["start"], v["end"], _marks(v["flags"]))
        for v in sim.vmas(int(sim.pids()[0]))
        if 0x7FFFE8000000 <= v["start"] < 0x7FFFF0000000
    ]
    assert got == [(0x7FFFE8000000, 0x7FFFE8021000, "nr"), (0x7FFFE8021000, 0x7FFFF0000000, "nr")]


ARENA_C = r"""
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static char buf[1 << 20];
static void *work(void *arg) {
    char *p = malloc(1000); /* a new thread's first malloc makes a non-main arena */
    memset(p, 1, 1000);
    return p;
}
int main(int argc, char **argv) {
    pthread_t t;
    void *r;
    pthread_create(&t, 0, work, 0);
    pthread_join(t, &r);
    /* a static buffer and raw syscalls: no mapping changes while smaps is read */
    int fd = open("/proc/self/smaps", O_RDONLY), out;
    size_t n = 0;
    ssize_t k;
    while ((k = read(fd, buf + n, sizeof buf - n)) > 0)
        n += k;
    out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    return write(out, buf, n) != (ssize_t)n;
}
"""


def _smaps_vmas(text: str, skip=("[vsyscall]",)):
    """[(start, end, perms, marks)] from /proc/PID/smaps, without the `skip` mappings (the
    vsyscall page is not in the mm's VMA tree)."""
    out, cur = [], None
    for line in text.splitlines():
        head = line.split()
        if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            cur = None if (len(head) > 5 and head[5] in skip) else (lo, hi, head[1][:3])
        elif line.startswith("VmFlags:") and cur is not None:
            names = {"ac": "account", "nr": "noreserve", "nh": "nohugepage"}
            out.append((*cur, _marks([names.get(f, f) for f in head[1:]])))
    return out


@pytest.mark.skipif(
    shutil.which("strace") is None or shutil.which("cc") is None or sys.platform != "linux",
    reason="needs strace, a C compiler and Linux",
)
def test_a_threaded_programs_arena_heap_replays_with_the_kernels_flags(tmp_path):
    """glibc maps a non-main malloc arena's heap with MAP_NORESERVE (128 MiB PROT_NONE,
    trimmed to an aligned 64 MiB, its start made writable) and the thread's stack with
    MAP_STACK. Recorded and replayed in 6.18, the VM_NORESERVE VMAs are the ones the real
    process's smaps shows, with the same ranges, permissions and flags: the writable part
    is not charged (no "ac"); so is every other VMA, the main stack included."""
    src, exe = tmp_path / "arena.c", tmp_path / "arena"
    src.write_text(ARENA_C)
    subprocess.run(["cc", "-O0", "-pthread", "-o", str(exe), str(src)], check=True, capture_output=True)
    smaps, out = tmp_path / "smaps", tmp_path / "arena-rec" / "record.trace"
    assert main(["record", "--out", str(out.parent), "--", str(exe), str(smaps)]) == 0
    real = _smaps_vmas(smaps.read_text())
    real_nr = [v for v in real if "nr" in v[3]]
    if not real_nr:
        pytest.skip("this libc made no MAP_NORESERVE arena heap")
    text = out.read_text()
    assert " noreserve" in text
    sim = rmapsim.Simulator(era="6.18")
    res = sim.apply(
        "\n".join(line for line in text.splitlines() if not line.startswith("exit")) + "\n", check_each=True
    )
    assert res.errors() == [] and res.violation() is None
    perms = lambda prot: "".join(c if c in prot else "-" for c in "rwx")  # noqa: E731
    replayed = [(v["start"], v["end"], perms(v["prot"]), _marks(v["flags"])) for v in sim.vmas(1)]
    assert [v for v in replayed if "nr" in v[3]] == real_nr
    assert any(v[2] == "rw-" and v[3] == "nr" for v in real_nr)  # writable, yet not charged
    # and the whole address space matches the real one, VMA for VMA: the executable,
    # [heap], the arena heap, the thread's stack (MAP_STACK: VM_NOHUGEPAGE, its guard page
    # PROT_NONE), libc, ld.so, vvar/vdso and the main stack (sized from the strings)
    assert replayed == real
    assert any(v[2] == "rw-" and v[3] == "ac nh" for v in real)  # the thread stack


def test_the_stack_size_comes_from_the_argument_and_environment_strings(tmp_path):
    """setup_arg_pages: the pages the strings fill under the stack top (one pointer below
    it, the file name first), plus 32 pages of stack_expand. strace's quoting is undone
    (escapes count one byte); abbreviated arrays give no size (the 33-page default)."""
    assert record._c_string_bytes('"abc"') == 4
    assert record._c_string_bytes('"a\\nb\\"c"') == 6  # a \n b \" c + NUL
    assert record._c_string_bytes('"\\33[0m\\0335\\x41"') == 8  # ESC [ 0 m ESC 5 A + NUL
    assert record._c_string_bytes('"abc"...') is None
    assert record._string_array_bytes('["a", "bc", ""]') == [2, 3, 1]
    assert record._string_array_bytes("0x7ffe /* 3 vars */") is None
    assert record._string_array_bytes('["a", ...]') is None
    exe = tmp_path / "tool"
    exe.write_bytes(b"\x7fELF")
    args = ['"/t"', '["t", "' + "x" * 4000 + '"]', '["A=1"]']
    # 8 + 3 + 2 + 4001 + 4 = 4018 bytes: one page; 4100 more: two
    assert record.stack_pages(args, str(exe)) == 33
    assert record.stack_pages(['"/t"', '["t", "' + "x" * 8100 + '"]', "[]"], str(exe)) == 34
    assert record.stack_pages(['"/t"', '["t"]', "0x7ffe /* 3 vars */"], str(exe)) is None
    # binfmt_script: argv[0] goes, the script's name, the #! argument and the interpreter come
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/sh -e\necho\n")
    base = ['"/s"', '["s", "' + "x" * 4080 + '"]', "[]"]  # 8 + 3 + 2 + 4081 = 4094
    assert record.stack_pages(base, str(exe)) == 33
    assert record.stack_pages(base, str(script)) == 34  # 4094 - 2 + 3 ("/s") + 3 ("-e") + 8 ("/bin/sh")


@pytest.mark.skipif(
    shutil.which("strace") is None or shutil.which("cc") is None or sys.platform != "linux",
    reason="needs strace, a C compiler and Linux",
)
def test_a_big_environment_gives_the_kernels_stack_size(tmp_path):
    """20,000 bytes of environment: the real [stack] grows by five pages, and the replayed
    stack VMA has exactly the real range."""
    src, exe = tmp_path / "arena.c", tmp_path / "arena"
    src.write_text(ARENA_C)
    subprocess.run(["cc", "-O0", "-pthread", "-o", str(exe), str(src)], check=True, capture_output=True)
    smaps, out = tmp_path / "smaps", tmp_path / "big" / "record.trace"
    assert main(["record", "--out", str(out.parent), "--", "env", "BIG=" + "x" * 20000, str(exe), str(smaps)]) == 0
    real = [v for v in _smaps_vmas(smaps.read_text()) if v[1] == 0x7FFFFFFFF000]
    assert len(real) == 1 and (real[0][1] - real[0][0]) // 4096 >= 33 + 5
    sim = rmapsim.Simulator(era="6.18")
    text = out.read_text()
    res = sim.apply("\n".join(line for line in text.splitlines() if not line.startswith("exit")) + "\n")
    assert res.errors() == []
    top = max(sim.vmas(1), key=lambda v: v["end"])
    assert (top["start"], top["end"]) == real[0][:2]


def test_noreplace_dontunmap_and_madv_free_become_trace_words():
    """MAP_FIXED_NOREPLACE (0x100000, also as an unnamed bit), MREMAP_DONTUNMAP (4) and
    MADV_FREE (8, also as strace's bare number) as strace prints them; the replay on 6.18
    leaves the source of the DONTUNMAP move in place and the freed pages lazy-free."""
    text = log(
        f'710 execve("{EXE}", ["python"], 0x7ffe /* 3 vars */) = 0',
        "710 mmap(0x10000000, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, -1, 0)"
        " = 0x10000000",
        "710 mmap(0x10002000, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|0x100000, -1, 0) = 0x10002000",
        "710 madvise(0x10002000, 4096, MADV_FREE) = 0",
        "710 madvise(0x10000000, 4096, 0x8) = 0",
        "710 mremap(0x10000000, 8192, 8192, MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP, 0x20000000) = 0x20000000",
        "710 +++ exited with 0 +++",
    )
    ops, _ = ops_of(text)
    assert "mmap p1 0x10000000 0x2000 rw noreplace" in ops
    assert "mmap p1 0x10002000 0x1000 rw noreplace" in ops
    assert "madvise p1 0x10002000 0x1000 free" in ops and "madvise p1 0x10000000 0x1000 free" in ops
    assert "mremap p1 0x10000000 0x2000 0x2000 move 0x20000000 dontunmap" in ops
    sim = rmapsim.Simulator(era="6.18")
    tr = "# rmapsim trace v1\n" + "\n".join(o for o in ops if not o.startswith("exit")) + "\n"
    assert sim.apply(tr, check_each=True).errors() == []
    pid = int(sim.pids()[0])
    got = [(v["start"], v["end"]) for v in sim.vmas(pid) if v["start"] in (0x10000000, 0x20000000)]
    assert got == [(0x10000000, 0x10003000), (0x20000000, 0x20002000)]
    assert sim.page_at(pid, 0x10000000) is None  # emptied by the move
    assert sim.page_info(sim.page_at(pid, 0x20000000))["lazyfree"] is True  # moved, still lazy-free
    assert sim.page_info(sim.page_at(pid, 0x10002000))["lazyfree"] is True


def test_enomem_range_calls_are_kept_for_kernel_hole_replay():
    """An mprotect or madvise that failed with ENOMEM met a hole after changing what came
    before it (do_mprotect_pkey, madvise_walk_vmas): the recorder keeps it, and the replay
    in holes=kernel mode changes the same VMAs and returns the same error. Another failure
    (EACCES, EINVAL) changed nothing and is skipped."""
    text = log(
        f'700 execve("{EXE}", ["python"], 0x7ffe /* 3 vars */) = 0',
        "700 mmap(0x30000000, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = 0x30000000",
        "700 mmap(0x30003000, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = 0x30003000",
        "700 munmap(0x3000a000, 8192)          = 0",
        "700 mprotect(0x30000000, 20480, PROT_READ|PROT_WRITE) = -1 ENOMEM (Cannot allocate memory)",
        "700 madvise(0x30000000, 20480, MADV_DONTFORK) = -1 ENOMEM (Cannot allocate memory)",
        "700 mprotect(0x30003000, 8192, PROT_READ|PROT_EXEC) = -1 EACCES (Permission denied)",
        "700 madvise(0x30003000, 8192, MADV_WIPEONFORK) = -1 EINVAL (Invalid argument)",
        "700 +++ exited with 0 +++",
    )
    ops, _ = ops_of(text)
    assert "mprotect p1 0x30000000 0x5000 rw" in ops
    assert "madvise p1 0x30000000 0x5000 dontfork" in ops
    assert not any(o.startswith(("mprotect p1 0x30003000", "madvise p1 0x30003000")) for o in ops)
    tr = "# rmapsim trace v1\n# era 6.18+holes=kernel\n" + "\n".join(o for o in ops if not o.startswith("exit"))
    sim = rmapsim.Simulator(era="6.18+holes=kernel")
    res = sim.apply(tr + "\n", check_each=True)
    assert [kind for _, kind, _ in res.errors()] == ["BadAddress", "BadAddress"]
    p = int(sim.pids()[0])
    got = [(v["start"], v["prot"], "dontcopy" in v["flags"]) for v in sim.vmas(p) if v["start"] >> 28 == 3]
    assert got == [(0x30000000, "rw", True), (0x30003000, "r", True)]


@pytest.mark.skipif(shutil.which("strace") is None or shutil.which("cc") is None, reason="needs strace and cc")
def test_a_recorded_program_with_holes_replays_in_kernel_mode(tmp_path, capsys):
    """A real program that munmaps nothing, mprotects and madvises over a hole and shrinks
    over it: the recorded trace names 6.18+holes=kernel, and replay, with or without
    --era, runs it so (the two ENOMEM calls fail again, nothing else does)."""
    src = tmp_path / "h.c"
    src.write_text(
        "#define _GNU_SOURCE\n#include <sys/mman.h>\n#define P 4096UL\nint main(void) {\n"
        "  char *b = (char *)0x30000000UL; int f = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;\n"
        "  mmap(b, 2 * P, PROT_READ, f, -1, 0); mmap(b + 3 * P, 2 * P, PROT_READ, f, -1, 0);\n"
        "  munmap(b + 10 * P, 2 * P); mprotect(b, 5 * P, PROT_READ | PROT_WRITE);\n"
        "  madvise(b, 5 * P, MADV_DONTFORK); mremap(b, 5 * P, P, 0); return 0;\n}\n"
    )
    subprocess.run(["cc", "-O0", "-o", str(tmp_path / "h"), str(src)], check=True)
    out = tmp_path / "hr" / "record.trace"
    assert main(["record", "--out", str(out.parent), "--", str(tmp_path / "h")]) == 0
    text = out.read_text()
    assert "\n# era 6.18+holes=kernel\n" in text
    assert "munmap p1 0x3000a000 0x2000" in text and "mremap p1 0x30000000 0x5000 0x1000 nomove" in text
    capsys.readouterr()
    assert main(["replay", str(out)]) == 0
    got = capsys.readouterr().out
    assert "in era 6.18+holes=kernel (from the trace header); 2 returned errors" in got
    assert main(["replay", str(out), "--era", "3.0"]) == 0
    got = capsys.readouterr().out
    assert "in era 3.0+holes=kernel" in got and "2 returned errors" in got


def test_the_mlock_family_ksm_advice_and_prctl_become_trace_words():
    """mlock, mlock2(MLOCK_ONFAULT), munlock, mlockall (named flags and strace's bare
    number: MCL_CURRENT 1, MCL_FUTURE 2, MCL_ONFAULT 4), munlockall, MAP_LOCKED (0x2000),
    MADV_MERGEABLE / MADV_UNMERGEABLE and prctl(PR_SET_MEMORY_MERGE) (67, also bare) as
    strace prints them; a failed call and another prctl are skipped. The replay on 6.18
    has the flags the calls set."""
    text = log(
        f'720 execve("{EXE}", ["python"], 0x7ffe /* 3 vars */) = 0',
        "720 mmap(0x10000000, 16384, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = 0x10000000",
        "720 mmap(0x10008000, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_LOCKED, -1, 0) = 0x10008000",
        "720 mlock(0x10000064, 1)                 = 0",
        "720 mlock2(0x10001000, 4096, MLOCK_ONFAULT) = 0",
        "720 munlock(0x10000000, 4096)            = 0",
        "720 mlock(0x30000000, 4096)              = -1 ENOMEM (Cannot allocate memory)",
        "720 madvise(0x10002000, 8192, MADV_MERGEABLE) = 0",
        "720 madvise(0x10003000, 4096, MADV_UNMERGEABLE) = 0",
        "720 prctl(PR_SET_NAME, 0x7ffe)           = 0",
        "720 prctl(PR_SET_MEMORY_MERGE, 1)        = 0",
        "720 prctl(0x43 /* PR_??? */, 0)          = 0",
        "720 mlockall(MCL_FUTURE|MCL_ONFAULT)     = 0",
        "720 mlockall(0x1)                        = 0",
        "720 munlockall()                         = 0",
        "720 +++ exited with 0 +++",
    )
    ops, _ = ops_of(text)
    mine = [o for o in ops if o.split()[0] in ("mlock", "munlock", "mlockall", "munlockall", "memory_merge")]
    assert mine == [
        "mlock p1 0x10000064 0x1",
        "mlock p1 0x10001000 0x1000 onfault",
        "munlock p1 0x10000000 0x1000",
        "memory_merge p1 on",
        "memory_merge p1 off",
        "mlockall p1 future onfault",
        "mlockall p1 current",
        "munlockall p1",
    ]
    assert "mmap p1 0x10008000 0x2000 rw locked" in ops
    assert "madvise p1 0x10002000 0x2000 mergeable" in ops and "madvise p1 0x10003000 0x1000 unmergeable" in ops
    sim = rmapsim.Simulator(era="6.18")
    cut = ops.index("memory_merge p1 on")
    tr = "# rmapsim trace v1\n" + "\n".join(ops[:cut]) + "\n"
    assert sim.apply(tr, check_each=True).errors() == []
    pid = int(sim.pids()[0])
    flags = {(v["start"] - 0x10000000) // 4096: v["flags"] for v in sim.vmas(pid) if v["start"] >= 0x10000000}
    assert "locked" not in flags[0]  # mlock'd by its first byte, then munlocked
    assert {"locked", "lockonfault"} <= set(flags[1])
    assert "mergeable" in flags[2] and "mergeable" not in flags[3]
    assert "locked" in flags[8]  # MAP_LOCKED
