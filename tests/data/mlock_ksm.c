/* mlock, mlock2(MLOCK_ONFAULT), munlock, mlockall, munlockall, MAP_LOCKED and KSM's
 * VM_MERGEABLE (MADV_MERGEABLE / MADV_UNMERGEABLE, prctl PR_SET_MEMORY_MERGE) on the live
 * kernel: which VMAs they split and merge, what they fault in, what fork keeps.
 * tests/mm/test_mlock.py and tests/mm/test_ksm.py replay the same calls on the simulator
 * and compare with the recorded output (tests/data/mlock_ksm.out). Run as root (no
 * RLIMIT_MEMLOCK in the way). Build: cc -O0 -o mlock_ksm mlock_ksm.c
 *
 * Each step prints "step NAME" and its call results ("ret NAME 0" or "ret NAME ENOMEM"),
 * then every VMA in [BASE, BASE + 16 pages): its range, perms, the VmFlags "lo"
 * (VM_LOCKED), "lf" (VM_LOCKONFAULT) and "mg" (VM_MERGEABLE) of /proc/self/smaps, and
 * its anonymous pages ("Anonymous:"; the zero page a read fault maps is not counted). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define P 4096UL
#define BASE 0x10000000UL
#define A(i) (BASE + (i) * P)
#define RW (PROT_READ | PROT_WRITE)
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif

static void dump(void) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512], perms[8];
    unsigned long s, e, cur = 0, kb;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3 && strchr(line, '-') < strchr(line, ' ')) {
            cur = (s >= BASE && e <= A(16)) ? s : 0;
            if (cur)
                printf("vma %#lx %#lx %.3s", s, e, perms);
        } else if (cur && sscanf(line, "Anonymous: %lu kB", &kb) == 1) {
            printf(" anon=%lu", kb / 4);
        } else if (cur && strncmp(line, "VmFlags:", 8) == 0) {
            printf(" %s %s %s\n", strstr(line, " lo") ? "lo" : "-", strstr(line, " lf") ? "lf" : "-",
                   strstr(line, " mg") ? "mg" : "-");
        }
    }
    fclose(f);
}

static void ret(const char *name, long r) {
    printf("ret %s %s\n", name, r == 0 ? "0" : errno == ENOMEM ? "ENOMEM" : errno == EINVAL ? "EINVAL" : "other");
}

static void map(unsigned long page, unsigned long pages, int prot, int extra) {
    mmap((void *)A(page), pages * P, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | extra, -1, 0);
}

static void step(const char *name) {
    munmap((void *)BASE, 16 * P);
    printf("step %s\n", name);
}

#define CALL(name, expr) ret(name, (long)(expr))

static void lock_steps(void) {
    step("split");  /* mlock the middle of four pages: three VMAs, the middle faulted */
    map(0, 4, RW, 0);
    CALL("mlock", mlock((void *)A(1), 2 * P));
    dump();
    CALL("munlock", munlock((void *)A(1), 2 * P)); /* merges back; the pages stay */
    dump();
    step("readonly"); /* read faults: the zero page, no anonymous page */
    map(0, 2, PROT_READ, 0);
    CALL("mlock", mlock((void *)A(0), 2 * P));
    dump();
    step("none"); /* PROT_NONE cannot be faulted: ENOMEM, but it is locked */
    map(0, 2, PROT_NONE, 0);
    CALL("mlock", mlock((void *)A(0), 2 * P));
    CALL("mprotect", mprotect((void *)A(0), 2 * P, RW)); /* a locked VMA made writable is faulted in */
    dump();
    step("hole"); /* ENOMEM at the hole; the kernel has locked the VMA before it */
    map(0, 1, RW, 0);
    map(2, 1, RW, 0);
    CALL("mlock", mlock((void *)A(0), 3 * P));
    dump();
    step("stops"); /* rw, none, rw: populate stops at the PROT_NONE VMA */
    map(0, 1, RW, 0);
    map(1, 1, PROT_NONE, 0);
    map(2, 1, RW, 0);
    CALL("mlock", mlock((void *)A(0), 3 * P));
    dump();
    step("onfault"); /* VM_LOCKONFAULT: nothing faulted; mlock then clears it and faults */
    map(0, 2, RW, 0);
    CALL("mlock2", syscall(SYS_mlock2, A(0), 2 * P, MLOCK_ONFAULT));
    dump();
    CALL("mlock", mlock((void *)A(0), 2 * P));
    dump();
    step("unaligned"); /* do_mlock rounds the range out to pages */
    map(0, 2, RW, 0);
    CALL("mlock", mlock((void *)(A(0) + 100), 1));
    dump();
    step("map_locked"); /* MAP_LOCKED: locked and faulted; a plain neighbour stays apart */
    map(0, 2, RW, MAP_LOCKED);
    map(2, 2, RW, 0);
    map(4, 2, RW, MAP_LOCKED);
    map(6, 2, RW, MAP_LOCKED);
    dump();
    step("madvise"); /* MADV_DONTNEED / MADV_PAGEOUT: EINVAL at the locked VMA, the one before done */
    map(0, 1, RW, 0);
    *(volatile char *)A(0) = 1;
    map(1, 1, PROT_READ, 0);
    mlock((void *)A(1), P);
    CALL("dontneed", madvise((void *)A(0), 2 * P, MADV_DONTNEED));
    CALL("pageout", madvise((void *)A(1), P, MADV_PAGEOUT));
    dump();
    step("mremap"); /* a locked VMA grown by mremap: the new part is faulted in */
    map(0, 2, RW, 0);
    mlock((void *)A(0), 2 * P);
    CALL("mremap", mremap((void *)A(0), 2 * P, 4 * P, 0) == (void *)A(0) ? 0 : -1);
    dump();
    step("fork"); /* the child's copies are not locked */
    map(0, 2, RW, 0);
    mlock((void *)A(0), P);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        dump();
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, 0, 0);
    dump();
}

static void mlockall_steps(void) {
    step("mlockall"); /* MCL_CURRENT | MCL_FUTURE: later mmaps locked and faulted, PROT_NONE too */
    map(0, 2, RW, 0);
    CALL("mlockall", mlockall(MCL_CURRENT | MCL_FUTURE));
    map(2, 2, RW, 0);
    map(6, 2, PROT_NONE, 0);
    dump();
    fflush(stdout);
    pid_t c = fork(); /* the child: nothing locked, and its mmaps are not */
    if (c == 0) {
        map(10, 2, RW, 0);
        dump();
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, 0, 0);
    CALL("munlockall", munlockall());
    dump();
    step("future_onfault"); /* MCL_FUTURE | MCL_ONFAULT: later mmaps locked on fault */
    map(0, 2, RW, 0);
    CALL("mlockall", mlockall(MCL_FUTURE | MCL_ONFAULT));
    map(4, 2, RW, 0);
    dump();
    CALL("mlockall", mlockall(MCL_ONFAULT)); /* EINVAL alone */
    CALL("mlockall", mlockall(MCL_CURRENT)); /* every VMA locked and faulted; def_flags cleared */
    map(8, 1, RW, 0);
    dump();
    munlockall();
}

static void ksm_steps(void) {
    step("mergeable"); /* MADV_MERGEABLE splits and merges like any flag advice */
    map(0, 2, RW, 0);
    map(2, 2, PROT_READ, 0);
    CALL("mergeable", madvise((void *)A(0), 2 * P, MADV_MERGEABLE));
    CALL("mprotect", mprotect((void *)A(2), 2 * P, RW));
    dump();
    CALL("mergeable", madvise((void *)A(2), 2 * P, MADV_MERGEABLE));
    dump();
    CALL("unmergeable", madvise((void *)A(0), P, MADV_UNMERGEABLE));
    dump();
    step("prctl"); /* PR_SET_MEMORY_MERGE marks every VMA in place: no merge then */
    map(0, 4, RW, 0);
    madvise((void *)A(0), 2 * P, MADV_MERGEABLE);
    CALL("prctl_on", prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0));
    dump();
    map(4, 2, RW, 0); /* 6.16+: the flag is set before the merge attempt: it merges */
    dump();
    CALL("unmergeable", madvise((void *)A(4), 2 * P, MADV_UNMERGEABLE));
    dump();
    fflush(stdout);
    pid_t c = fork(); /* fork keeps MMF_VM_MERGE_ANY */
    if (c == 0) {
        printf("child get %d\n", prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0));
        map(10, 1, RW, 0);
        dump();
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, 0, 0);
    CALL("prctl_off", prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0)); /* every VM_MERGEABLE cleared, no merge */
    dump();
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    lock_steps();
    fflush(stdout);
    pid_t c = fork(); /* mlockall changes the whole process: in a child of its own */
    if (c == 0) {
        mlockall_steps();
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, 0, 0);
    ksm_steps();
    return 0;
}
