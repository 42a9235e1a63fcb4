"""What ``execve`` maps before the program's first system call, rebuilt for ``rmapsim
record`` (``docs/replay.md``): the executable's and its interpreter's ELF segments at the
addresses x86-64 uses without randomisation, ``[vvar]``/``[vdso]``, and the stack sized
as ``setup_arg_pages`` does. strace cannot see these mappings; the recorder needs them
so that later calls naming their addresses line up.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import List, Optional, Tuple

PAGE = 4096


def _split_args(s: str) -> List[str]:
    """Top-level comma split of an strace argument list (brackets, braces, quotes)."""
    out, depth, cur, quote, esc = [], 0, [], False, False
    for ch in s:
        if quote:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                quote = False
            continue
        if ch == '"':
            quote = True
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if cur:
        out.append("".join(cur).strip())
    return out


ELF_ET_DYN_BASE = 0x555555554000
TASK_SIZE = 0x7FFFFFFFF000
MMAP_BASE_NORANDOM = TASK_SIZE - (128 << 20)


def mmap_base_for(stack_rlimit: Optional[int]) -> int:
    """x86-64 ``mmap_base()`` without randomisation: TASK_SIZE minus the stack rlimit plus
    the 1 MiB stack guard gap, clamped to [128 MiB, 5/6 TASK_SIZE] (an unlimited stack
    takes the upper clamp). ``None``: the default 8 MiB rlimit."""
    gap = (8 << 20 if stack_rlimit is None else stack_rlimit) + (256 * PAGE)
    gap = min(max(gap, 128 << 20), (TASK_SIZE // 6) * 5)
    return (TASK_SIZE - gap + PAGE - 1) & ~(PAGE - 1)


STACK = (0x7FFFFFFDE000, 0x7FFFFFFFF000)
VDSO_PAGES = (("[vvar]", 4, "r"), ("[vvar_vclock]", 2, "r"), ("[vdso]", 2, "rx"))


@dataclass
class Segment:
    start: int
    end: int
    prot: str
    offset: int
    file: Optional[str]  # None: anonymous (bss)
    written: bool


def elf_image(path: str, base: Optional[int] = None) -> Tuple[List[Segment], Optional[str], int]:
    """The mappings execve makes for one ELF file: file segments (and anonymous bss), its
    PT_INTERP, and the image's end. ``base`` overrides the load address (ld.so)."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError(f"{path}: not a 64-bit ELF file")
    (e_type,) = struct.unpack_from("<H", data, 16)
    (e_phoff,) = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    phs = []
    interp = None
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz, _ = struct.unpack_from("<IIQQQQQQ", data, off)
        if p_type == 1:
            phs.append((p_flags, p_offset, p_vaddr, p_filesz, p_memsz))
        elif p_type == 3:
            with open(path, "rb") as f:
                f.seek(p_offset)
                interp = f.read(p_filesz).rstrip(b"\0").decode()
    if base is None:
        base = ELF_ET_DYN_BASE if e_type == 3 else 0
    down = lambda x: x & ~(PAGE - 1)  # noqa: E731
    up = lambda x: (x + PAGE - 1) & ~(PAGE - 1)  # noqa: E731
    segs: List[Segment] = []
    end = 0
    for flags, p_offset, vaddr, filesz, memsz in phs:
        prot = ("r" if flags & 4 else "") + ("w" if flags & 2 else "") + ("x" if flags & 1 else "")
        start = base + down(vaddr)
        fend = up(base + vaddr + filesz)
        mend = up(base + vaddr + memsz)
        if fend > start:
            # a partial last file page of a writable segment is zeroed past filesz: written
            segs.append(Segment(start, fend, prot or "none", down(p_offset), path, "w" in prot))
        if mend > fend:
            segs.append(Segment(fend, mend, prot or "none", 0, None, "w" in prot))
        end = max(end, mend)
    return segs, interp, end


def script_interpreter(path: str, depth: int = 0) -> str:
    """The ELF file execve really loads for ``path``: a ``#!`` script's interpreter
    (binfmt_script, up to 4 levels as the kernel allows), else ``path`` itself."""
    with open(path, "rb") as f:
        head = f.read(256)
    if not head.startswith(b"#!") or depth >= 4:
        return path
    words = head[2:].split(b"\n", 1)[0].split()
    if not words:
        raise ValueError(f"{path}: empty #! line")
    return script_interpreter(words[0].decode(), depth + 1)


STACK_EXPAND_PAGES = 32  # setup_arg_pages' stack_expand: 128 KiB below the argument pages


def _c_string_bytes(tok: str) -> Optional[int]:
    """Bytes of one strace-quoted C string with its NUL (``"a\\nb"`` -> 4); None when strace
    truncated it (``"abc"...``) or it is not a string."""
    tok = tok.strip()
    if len(tok) < 2 or tok[0] != '"' or tok[-1] != '"':
        return None
    body, i, n = tok[1:-1], 0, 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            if body[i + 1] == "x":
                i += 4  # \xHH
            elif body[i + 1] in "01234567":
                j = i + 1
                while j < len(body) and j < i + 4 and body[j] in "01234567":
                    j += 1
                i = j  # up to three octal digits
            else:
                i += 2  # \n, \t, \", \\ ...
        else:
            i += 1
        n += 1
    return n + 1


def _string_array_bytes(tok: str) -> Optional[List[int]]:
    """Each string's bytes (with its NUL) of an strace string array ``["a", "bc"]``; None
    when strace abbreviated it (``/* 3 vars */``, a trailing ``...``)."""
    tok = tok.strip()
    if len(tok) < 2 or tok[0] != "[" or tok[-1] != "]":
        return None
    inner = tok[1:-1].strip()
    out = []
    for part in _split_args(inner) if inner else []:
        b = _c_string_bytes(part)
        if b is None:
            return None
        out.append(b)
    return out


def stack_pages(args: List[str], path: str) -> Optional[int]:
    """Pages of the stack VMA execve leaves (``setup_arg_pages``): the pages the argument
    and environment strings fill under the stack top (``bprm->p`` starts one pointer below
    it; the file name is copied first), plus ``stack_expand`` (32 pages). A ``#!`` script
    (binfmt_script, up to 4 levels) drops argv[0] and adds the interpreter's name, its
    optional argument and the script's name. ``args`` are execve's strace arguments
    (file name, argv, envp); None when strace abbreviated them."""
    if len(args) < 3:
        return None
    name, argv, env = _c_string_bytes(args[0]), _string_array_bytes(args[1]), _string_array_bytes(args[2])
    if name is None or argv is None or env is None:
        return None
    used = 8 + name + sum(argv) + sum(env)
    deepest = used  # the VMA covers the lowest bprm->p ever reached (remove_arg_zero raises it)
    interp, cur, first = name, path, argv[0] if argv else 0
    for _ in range(4):
        try:
            with open(cur, "rb") as f:
                head = f.read(256)
        except OSError:
            break
        if not head.startswith(b"#!"):
            break
        line = head[2:].split(b"\n", 1)[0].strip()
        if not line:
            break
        words = line.split(None, 1)
        i_name = len(words[0]) + 1
        i_arg = len(words[1].strip()) + 1 if len(words) > 1 and words[1].strip() else 0
        used += -first + interp + i_arg + i_name  # remove_arg_zero, then interp, i_arg, i_name
        deepest = max(deepest, used)
        interp, first, cur = i_name, i_name, words[0].decode(errors="replace")
    return STACK_EXPAND_PAGES + -(-deepest // PAGE)


def _elf_type(path: str) -> int:
    with open(path, "rb") as f:
        return struct.unpack("<H", f.read(18)[16:18])[0]


def image_for(path: str, mmap_base: int = MMAP_BASE_NORANDOM) -> List[Segment]:
    """Everything execve maps for ``path`` without randomisation (see the module doc). A
    ``#!`` script maps its interpreter; an ET_DYN file without PT_INTERP (a static PIE,
    ld.so run directly) goes top-down below ``mmap_base`` like an interpreter."""
    real = script_interpreter(path)
    segs, interp, span = elf_image(real)
    top = mmap_base
    if not interp and segs and segs[0].start == ELF_ET_DYN_BASE and _elf_type(real) == 3:
        segs, _, _ = elf_image(real, base=top - (span - ELF_ET_DYN_BASE))
        top -= span - ELF_ET_DYN_BASE
    if interp:
        _, _, span = elf_image(interp, base=0)
        base = top - span
        isegs, _, _ = elf_image(interp, base=base)
        segs += isegs
        top = base
    for name, pages, prot in VDSO_PAGES[::-1]:
        top -= pages * PAGE
        segs.append(Segment(top, top + pages * PAGE, prot, 0, name, False))
    segs.append(Segment(STACK[0], STACK[1], "rw", 0, None, True))
    return segs
