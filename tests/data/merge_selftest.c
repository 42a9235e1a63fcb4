/* The kernel selftest tools/testing/selftests/mm/merge.c (its 23-case version: 15 `merge`
 * cases and the 4 `merge_with_fork` cases in their forked and unforked variants, added
 * with the January 2026 mremap-merge fixes 61f67c230a5e / 3b617fd3d317, whose kernel side
 * the 6.18.y stable kernels carry; 6.18.2's tree has the 15 `merge` cases), re-written as one
 * plain program whose output tests/mm/test_merge_selftest.py compares with rmapsim (recorded
 * in tests/data/merge_selftest.out). Same mappings, same operations, same checks; the
 * differences from merge.c are only these:
 *  - the 30-page PROT_NONE carveout is placed at a fixed address (BASE, MAP_FIXED_NOREPLACE)
 *    instead of where the kernel chooses, so the simulator can use the same addresses;
 *  - each case runs in its own child process (as the kselftest harness does) and a failed
 *    check is recorded instead of ending the case, so every case prints one line;
 *  - "is addr inside a VMA, and which" (merge.c's find_vma_procmap, PROCMAP_QUERY) is read
 *    from /proc/self/smaps, which also gives each VMA's flags;
 *  - the uprobe case's probe file is a temporary file, not ./foo.
 *
 * Output, one line per case:
 *   NAME[/VARIANT]: q A-B ... | S-E:PERM:FLAGS ... | pass|FAIL [what failed]|skip REASON
 * "q A-B" is the VMA each of merge.c's find_vma_procmap calls found (page numbers relative
 * to BASE; "q none" if the address is in no VMA); then every VMA in [BASE, BASE + 4096
 * pages) at the end of the case, with its protection (r, w, x or -) and the VmFlags of
 * interest (ac = VM_ACCOUNT, nr = VM_NORESERVE, mg = VM_MERGEABLE; "-" if none).
 * Build: cc -O0 -o merge_selftest merge_selftest.c; run as root (the uprobe case needs
 * perf_event_open of a uprobe). `merge_selftest NAME` is the count mode (see count_mode). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/perf_event.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

#define P 4096UL
#define BASE 0x20000000UL
#define WINDOW (4096 * P)
#define ANON (MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED)
#define RW (PROT_READ | PROT_WRITE)

static char *carveout;
static char line[8192];
static int failed;
static int counting; /* count mode (see main): no I/O inside the case */

static void say(const char *fmt, ...) {
    va_list ap;
    size_t n = strlen(line);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
}

static long pg(const void *addr) { return ((long)(unsigned long)addr - (long)BASE) / (long)P; }

/* The VMA containing addr from /proc/self/smaps: 1 and its range, or 0. */
static int find_vma(const void *addr, unsigned long *start, unsigned long *end) {
    FILE *f = fopen("/proc/self/maps", "r");
    char buf[512];
    unsigned long s, e, a = (unsigned long)addr;
    int found = 0;
    while (f && fgets(buf, sizeof buf, f))
        if (sscanf(buf, "%lx-%lx", &s, &e) == 2 && s <= a && a < e) {
            *start = s, *end = e, found = 1;
            break;
        }
    if (f)
        fclose(f);
    return found;
}

/* merge.c's "ASSERT_TRUE(find_vma_procmap(addr)); vma_start == start; vma_end == end". */
static void expect_vma(const void *addr, const void *start, unsigned long len) {
    unsigned long s, e;
    if (counting)
        return;
    if (!find_vma(addr, &s, &e)) {
        say(" q none");
        failed = 1;
        return;
    }
    say(" q %ld-%ld", pg((void *)s), pg((void *)e));
    if (s != (unsigned long)start || e != (unsigned long)start + len)
        failed = 1;
}

static void list_window(void) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char buf[512], perm[8];
    unsigned long s, e, cur = 0;
    int in = 0;
    say(" |");
    while (f && fgets(buf, sizeof buf, f)) {
        if (sscanf(buf, "%lx-%lx %7s", &s, &e, perm) == 3) {
            in = s < BASE + WINDOW && e > BASE;
            if (in)
                say(" %ld-%ld:%c%c%c", pg((void *)s), pg((void *)e), perm[0], perm[1], perm[2]);
            cur = s;
        } else if (in && !strncmp(buf, "VmFlags:", 8)) {
            int any = 0;
            const char *names[] = {"ac", "nr", "mg"};
            for (int i = 0; i < 3; i++) {
                char pat[5] = {' ', names[i][0], names[i][1], 0};
                char *hit = strstr(buf + 8, pat);
                if (hit && (hit[3] == ' ' || hit[3] == '\n')) {
                    say("%s%s", any ? "," : ":", names[i]);
                    any = 1;
                }
            }
            if (!any)
                say(":-");
        }
    }
    (void)cur;
    if (f)
        fclose(f);
}

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            say(" | FAIL line %d errno %d\n", __LINE__, errno);                              \
            return;                                                                          \
        }                                                                                    \
    } while (0)

static char *map_at(long page, unsigned long pages, int prot, int extra) {
    return mmap(carveout + page * P, pages * P, prot, ANON | extra, -1, 0);
}

static char *move(void *old, unsigned long pages, void *to, int extra) {
    return (char *)syscall(SYS_mremap, old, pages * P, pages * P, MREMAP_MAYMOVE | MREMAP_FIXED | extra, to);
}

/* In a forked variant the parent waits for the child and prints nothing; 1 in the parent. */
static int parent_of_fork;

static int fork_here(void) {
    pid_t pid = fork();
    if (pid == -1)
        return -1;
    if (pid) {
        waitpid(pid, NULL, 0);
        parent_of_fork = 1;
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the merge fixture */

/* mprotect_unfaulted_left: RO unfaulted | RW faulted -> mprotect the right RO: one VMA */
static void mprotect_unfaulted_left(void) {
    char *ptr = map_at(1, 10, RW, MAP_NORESERVE);
    CHECK(ptr != MAP_FAILED);
    CHECK(!mprotect(ptr, 5 * P, PROT_READ));
    ptr[5 * P] = 'x';
    CHECK(!mprotect(ptr + 5 * P, 5 * P, PROT_READ));
    expect_vma(ptr, ptr, 10 * P);
}

static void mprotect_unfaulted_right(void) {
    char *ptr = map_at(1, 10, RW, MAP_NORESERVE);
    CHECK(ptr != MAP_FAILED);
    CHECK(!mprotect(ptr + 5 * P, 5 * P, PROT_READ));
    ptr[0] = 'x';
    CHECK(!mprotect(ptr, 5 * P, PROT_READ));
    expect_vma(ptr, ptr, 10 * P);
}

static void mprotect_unfaulted_both(void) {
    char *ptr = map_at(2, 9, RW, MAP_NORESERVE);
    CHECK(ptr != MAP_FAILED);
    CHECK(!mprotect(ptr, 3 * P, PROT_READ));
    CHECK(!mprotect(ptr + 6 * P, 3 * P, PROT_READ));
    ptr[3 * P] = 'x';
    CHECK(!mprotect(ptr + 3 * P, 3 * P, PROT_READ));
    expect_vma(ptr, ptr, 9 * P);
}

static void mprotect_faulted_left_unfaulted_right(void) {
    char *ptr = map_at(2, 9, RW, MAP_NORESERVE);
    CHECK(ptr != MAP_FAILED);
    CHECK(!mprotect(ptr + 6 * P, 3 * P, PROT_READ));
    ptr[0] = 'x';
    CHECK(!mprotect(ptr, 3 * P, PROT_READ));
    CHECK(!mprotect(ptr + 3 * P, 3 * P, PROT_READ));
    expect_vma(ptr, ptr, 9 * P);
}

static void mprotect_unfaulted_left_faulted_right(void) {
    char *ptr = map_at(2, 9, RW, MAP_NORESERVE);
    CHECK(ptr != MAP_FAILED);
    CHECK(!mprotect(ptr, 3 * P, PROT_READ));
    ptr[3 * P] = 'x';
    CHECK(!mprotect(ptr + 6 * P, 3 * P, PROT_READ));
    CHECK(!mprotect(ptr + 3 * P, 3 * P, PROT_READ));
    expect_vma(ptr, ptr, 9 * P);
}

/* forked_target_vma: in the child, a new VMA after the forked faulted one must not merge */
static void forked_target_vma(void) {
    char *ptr = map_at(1, 5, RW, 0), *ptr2;
    CHECK(ptr != MAP_FAILED);
    ptr[0] = 'x';
    int r = fork_here();
    CHECK(r != -1);
    if (r)
        return;
    for (unsigned long i = 0; i < 5 * P; i += P)
        ptr[i] = 'x';
    ptr2 = mmap(ptr + 5 * P, 5 * P, RW, ANON, -1, 0);
    CHECK(ptr2 != MAP_FAILED);
    expect_vma(ptr, ptr, 5 * P);
}

/* forked_source_vma: the forked VMA made RWX next to an unfaulted RWX one must not merge */
static void forked_source_vma(void) {
    char *ptr = map_at(1, 5, RW, MAP_NORESERVE), *ptr2;
    CHECK(ptr != MAP_FAILED);
    ptr[0] = 'x';
    int r = fork_here();
    CHECK(r != -1);
    if (r)
        return;
    for (unsigned long i = 0; i < 5 * P; i += P)
        ptr[i] = 'x';
    ptr2 = map_at(6, 5, RW | PROT_EXEC, MAP_NORESERVE);
    CHECK(ptr2 != MAP_FAILED);
    expect_vma(ptr2, ptr2, 5 * P);
    CHECK(!mprotect(ptr, 5 * P, RW | PROT_EXEC));
    expect_vma(ptr2, ptr2, 5 * P);
}

/* handle_uprobe_upon_merged_vma: a uprobe on a file, the file mapped PROT_EXEC, one page
 * moved (and grown) onto the mapping and moved back; merge.c checks only that the calls
 * succeed (the bug it guards against was a kernel crash). */
static void handle_uprobe_upon_merged_vma(void) {
    char path[] = "/tmp/merge_selftest_probe_XXXXXX";
    struct perf_event_attr attr;
    unsigned long type = 0;
    FILE *f = fopen("/sys/bus/event_source/devices/uprobe/type", "r");
    int fd = mkstemp(path);
    char *ptr1, *ptr2;
    CHECK(fd >= 0);
    CHECK(!ftruncate(fd, P));
    if (!f || fscanf(f, "%lu", &type) != 1) {
        say(" | skip no uprobe PMU\n");
        close(fd), unlink(path);
        return;
    }
    fclose(f);
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = type;
    attr.config1 = (unsigned long)path;
    attr.config2 = 0;
    int ev = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
    if (ev < 0)
        failed = 1;
    ptr1 = mmap(carveout + P, 10 * P, PROT_EXEC, MAP_PRIVATE | MAP_FIXED, fd, 0);
    if (ptr1 != MAP_FAILED) {
        ptr2 = mremap(ptr1, P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, ptr1 + 5 * P);
        if (ptr2 == MAP_FAILED || mremap(ptr2, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, ptr1) == MAP_FAILED)
            failed = 1;
    } else {
        failed = 1;
    }
    say(" perf_event_open %s", ev < 0 ? "failed" : "ok");
    close(fd), unlink(path);
}

/* ksm_merge: with PR_SET_MEMORY_MERGE, new VMAs are VM_MERGEABLE from the start and still
 * merge with a mergeable neighbour */
static void ksm_merge(void) {
    char *ptr = map_at(1, 1, RW, 0), *ptr2 = map_at(2, 1, RW, 0);
    CHECK(ptr != MAP_FAILED && ptr2 != MAP_FAILED);
    expect_vma(ptr, ptr, 2 * P);
    CHECK(!munmap(ptr2, P));
    if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) == -1) {
        CHECK(errno == EINVAL);
        say(" | skip KSM memory merging not supported\n");
        return;
    }
    ptr2 = map_at(2, 1, RW, 0);
    CHECK(ptr2 != MAP_FAILED);
    expect_vma(ptr, ptr, 2 * P);
    CHECK(!munmap(ptr, 2 * P));
    ptr = map_at(1, 1, RW, 0);
    ptr2 = map_at(2, 1, RW, 0);
    CHECK(ptr != MAP_FAILED && ptr2 != MAP_FAILED);
    expect_vma(ptr, ptr, 2 * P);
}

/* mremap_unfaulted_to_faulted: an unfaulted VMA moved right after a faulted one merges */
static void mremap_unfaulted_to_faulted(void) {
    char *ptr = map_at(1, 5, RW, 0), *ptr2 = map_at(7, 5, RW, 0);
    CHECK(ptr != MAP_FAILED && ptr2 != MAP_FAILED);
    ptr2 = move(ptr2, 5, ptr2 + 1000 * P, 0);
    CHECK(ptr2 != MAP_FAILED);
    ptr[0] = 'x';
    ptr2 = move(ptr2, 5, ptr + 5 * P, 0);
    CHECK(ptr2 != MAP_FAILED);
    expect_vma(ptr, ptr, 10 * P);
}

/* mremap_unfaulted_behind_faulted: ... moved right before a faulted one merges */
static void mremap_unfaulted_behind_faulted(void) {
    char *ptr = map_at(6, 5, RW, 0), *ptr2 = map_at(14, 5, RW, 0);
    CHECK(ptr != MAP_FAILED && ptr2 != MAP_FAILED);
    ptr2 = move(ptr2, 5, ptr2 + 1000 * P, 0);
    CHECK(ptr2 != MAP_FAILED);
    ptr[0] = 'x';
    ptr2 = move(ptr2, 5, carveout + P, 0);
    CHECK(ptr2 != MAP_FAILED);
    expect_vma(ptr2, ptr2, 10 * P);
}

/* mremap_unfaulted_between_faulted: between two faulted VMAs of different anon_vmas it
 * merges with the first only */
static void mremap_unfaulted_between_faulted(void) {
    char *ptr = map_at(1, 5, RW, 0), *ptr2 = map_at(7, 5, RW, 0), *ptr3 = map_at(14, 5, RW, 0);
    CHECK(ptr != MAP_FAILED && ptr2 != MAP_FAILED && ptr3 != MAP_FAILED);
    ptr3 = move(ptr3, 5, ptr3 + 2000 * P, 0);
    CHECK(ptr3 != MAP_FAILED);
    ptr2 = move(ptr2, 5, ptr2 + 1000 * P, 0);
    CHECK(ptr2 != MAP_FAILED);
    ptr[0] = 'x';
    ptr3[0] = 'x';
    ptr3 = move(ptr3, 5, ptr + 10 * P, 0);
    CHECK(ptr3 != MAP_FAILED);
    ptr2 = move(ptr2, 5, ptr + 5 * P, 0);
    CHECK(ptr2 != MAP_FAILED);
    expect_vma(ptr, ptr, 10 * P);
    expect_vma(ptr3, ptr3, 5 * P);
}

/* mremap_unfaulted_between_faulted_unfaulted: faulted | moved unfaulted | unfaulted: all */
static void mremap_unfaulted_between_faulted_unfaulted(void) {
    char *ptr = map_at(1, 5, RW, 0), *ptr2 = map_at(7, 5, RW, 0), *ptr3 = map_at(14, 5, RW, 0);
    CHECK(ptr != MAP_FAILED && ptr2 != MAP_FAILED && ptr3 != MAP_FAILED);
    ptr3 = move(ptr3, 5, ptr3 + 2000 * P, 0);
    CHECK(ptr3 != MAP_FAILED);
    ptr2 = move(ptr2, 5, ptr2 + 1000 * P, 0);
    CHECK(ptr2 != MAP_FAILED);
    ptr[0] = 'x';
    ptr3 = move(ptr3, 5, ptr + 10 * P, 0);
    CHECK(ptr3 != MAP_FAILED);
    ptr2 = move(ptr2, 5, ptr + 5 * P, 0);
    CHECK(ptr2 != MAP_FAILED);
    expect_vma(ptr, ptr, 15 * P);
}

/* mremap_unfaulted_between_correctly_placed_faulted: the two halves of one faulted VMA
 * (same anon_vma, linear pgoff) and an unfaulted VMA moved between them: all three merge */
static void mremap_unfaulted_between_correctly_placed_faulted(void) {
    char *ptr = map_at(1, 15, RW, 0), *ptr2;
    CHECK(ptr != MAP_FAILED);
    ptr[0] = 'x';
    CHECK(!munmap(ptr + 5 * P, 5 * P));
    ptr2 = map_at(20, 5, RW, 0);
    CHECK(ptr2 != MAP_FAILED);
    ptr2 = move(ptr2, 5, ptr + 5 * P, 0);
    CHECK(ptr2 != MAP_FAILED);
    expect_vma(ptr, ptr, 15 * P);
}

/* mremap_correct_placed_faulted: thirds of one faulted VMA moved away and back, in several
 * orders; each return to the original place merges */
static void mremap_correct_placed_faulted(void) {
    char *ptr = map_at(1, 15, RW, 0), *ptr2, *ptr3;
    CHECK(ptr != MAP_FAILED);
    ptr[0] = 'x';
    ptr3 = move(ptr + 10 * P, 5, ptr + 10 * P + 2000 * P, 0);
    CHECK(ptr3 != MAP_FAILED);
    ptr2 = move(ptr + 5 * P, 5, ptr + 5 * P + 1000 * P, 0);
    CHECK(ptr2 != MAP_FAILED);
    ptr2 = move(ptr2, 5, ptr + 5 * P, 0);
    CHECK(ptr2 != MAP_FAILED);
    expect_vma(ptr, ptr, 10 * P);
    ptr = move(ptr, 5, ptr + 1000 * P, 0);
    CHECK(ptr != MAP_FAILED);
    ptr = move(ptr, 5, carveout + P, 0);
    CHECK(ptr != MAP_FAILED);
    expect_vma(ptr, ptr, 10 * P);
    ptr = move(ptr, 5, ptr + 1000 * P, 0);
    CHECK(ptr != MAP_FAILED);
    ptr3 = move(ptr3, 5, ptr2 + 5 * P, 0);
    CHECK(ptr3 != MAP_FAILED);
    expect_vma(ptr2, ptr2, 10 * P);
    ptr = move(ptr, 5, carveout + P, 0);
    CHECK(ptr != MAP_FAILED);
    expect_vma(ptr, ptr, 15 * P);
    ptr2 = move(ptr2, 5, ptr2 + 1000 * P, 0);
    CHECK(ptr2 != MAP_FAILED);
    ptr2 = move(ptr2, 5, ptr + 5 * P, 0);
    CHECK(ptr2 != MAP_FAILED);
    expect_vma(ptr, ptr, 15 * P);
    ptr3 = move(ptr3, 5, ptr3 + 1000 * P, 0);
    CHECK(ptr3 != MAP_FAILED);
    ptr3 = move(ptr3, 5, ptr + 10 * P, 0);
    CHECK(ptr3 != MAP_FAILED);
    expect_vma(ptr, ptr, 15 * P);
}

/* ------------------------------------------------- the merge_with_fork fixture (x2) */

static int forked;

/* mremap_faulted_to_unfaulted_prev: faulted A moved out, unfaulted B mapped at A's left,
 * A moved back with MREMAP_DONTUNMAP: merges with B unless A was forked */
static void mremap_faulted_to_unfaulted_prev(void) {
    char *ptr_a = map_at(4, 3, RW, 0), *ptr_b;
    CHECK(ptr_a != MAP_FAILED);
    ptr_a[0] = 'x';
    if (forked) {
        int r = fork_here();
        CHECK(r != -1);
        if (r)
            return;
    }
    ptr_a = move(ptr_a, 3, carveout + 20 * P, 0);
    CHECK(ptr_a != MAP_FAILED);
    ptr_b = map_at(1, 3, RW, 0);
    CHECK(ptr_b != MAP_FAILED);
    ptr_a = move(ptr_a, 3, carveout + 4 * P, MREMAP_DONTUNMAP);
    CHECK(ptr_a != MAP_FAILED);
    expect_vma(ptr_b, ptr_b, (forked ? 3 : 6) * P);
}

static void mremap_faulted_to_unfaulted_next(void) {
    char *ptr_a = map_at(1, 3, RW, 0), *ptr_b;
    CHECK(ptr_a != MAP_FAILED);
    ptr_a[0] = 'x';
    if (forked) {
        int r = fork_here();
        CHECK(r != -1);
        if (r)
            return;
    }
    ptr_a = move(ptr_a, 3, carveout + 20 * P, 0);
    CHECK(ptr_a != MAP_FAILED);
    ptr_b = map_at(4, 3, RW, 0);
    CHECK(ptr_b != MAP_FAILED);
    ptr_a = move(ptr_a, 3, carveout + P, MREMAP_DONTUNMAP);
    CHECK(ptr_a != MAP_FAILED);
    expect_vma(ptr_a, ptr_a, (forked ? 3 : 6) * P);
}

static void mremap_faulted_to_unfaulted_prev_unfaulted_next(void) {
    char *ptr_b = map_at(4, 3, RW, 0), *ptr_a, *ptr_c;
    CHECK(ptr_b != MAP_FAILED);
    ptr_b[0] = 'x';
    if (forked) {
        int r = fork_here();
        CHECK(r != -1);
        if (r)
            return;
    }
    ptr_b = move(ptr_b, 3, carveout + 20 * P, 0);
    CHECK(ptr_b != MAP_FAILED);
    ptr_a = map_at(1, 3, RW, 0);
    ptr_c = map_at(7, 3, RW, 0);
    CHECK(ptr_a != MAP_FAILED && ptr_c != MAP_FAILED);
    ptr_b = move(ptr_b, 3, carveout + 4 * P, MREMAP_DONTUNMAP);
    CHECK(ptr_b != MAP_FAILED);
    expect_vma(ptr_a, ptr_a, (forked ? 3 : 9) * P);
    if (forked)
        expect_vma(ptr_b, ptr_b, 3 * P);
}

static void mremap_faulted_to_unfaulted_prev_faulted_next(void) {
    char *ptr_bc = map_at(4, 6, RW, 0), *ptr_a, *ptr_b;
    CHECK(ptr_bc != MAP_FAILED);
    ptr_bc[0] = 'x';
    if (forked) {
        int r = fork_here();
        CHECK(r != -1);
        if (r)
            return;
    }
    ptr_b = move(ptr_bc, 3, carveout + 20 * P, 0);
    CHECK(ptr_b != MAP_FAILED);
    ptr_a = map_at(1, 3, RW, 0);
    CHECK(ptr_a != MAP_FAILED);
    ptr_b = move(ptr_b, 3, carveout + 4 * P, MREMAP_DONTUNMAP);
    CHECK(ptr_b != MAP_FAILED);
    if (forked)
        expect_vma(ptr_b, ptr_b, 6 * P);
    else
        expect_vma(ptr_a, ptr_a, 9 * P);
}

/* ------------------------------------------------------------------------ runner */

struct test {
    const char *name;
    void (*fn)(void);
    int with_fork; /* a merge_with_fork case: run forked and unforked */
};

static const struct test tests[] = {
    {"mprotect_unfaulted_left", mprotect_unfaulted_left, 0},
    {"mprotect_unfaulted_right", mprotect_unfaulted_right, 0},
    {"mprotect_unfaulted_both", mprotect_unfaulted_both, 0},
    {"mprotect_faulted_left_unfaulted_right", mprotect_faulted_left_unfaulted_right, 0},
    {"mprotect_unfaulted_left_faulted_right", mprotect_unfaulted_left_faulted_right, 0},
    {"forked_target_vma", forked_target_vma, 0},
    {"forked_source_vma", forked_source_vma, 0},
    {"handle_uprobe_upon_merged_vma", handle_uprobe_upon_merged_vma, 0},
    {"ksm_merge", ksm_merge, 0},
    {"mremap_unfaulted_to_faulted", mremap_unfaulted_to_faulted, 0},
    {"mremap_unfaulted_behind_faulted", mremap_unfaulted_behind_faulted, 0},
    {"mremap_unfaulted_between_faulted", mremap_unfaulted_between_faulted, 0},
    {"mremap_unfaulted_between_faulted_unfaulted", mremap_unfaulted_between_faulted_unfaulted, 0},
    {"mremap_unfaulted_between_correctly_placed_faulted", mremap_unfaulted_between_correctly_placed_faulted, 0},
    {"mremap_correct_placed_faulted", mremap_correct_placed_faulted, 0},
    {"mremap_faulted_to_unfaulted_prev", mremap_faulted_to_unfaulted_prev, 1},
    {"mremap_faulted_to_unfaulted_next", mremap_faulted_to_unfaulted_next, 1},
    {"mremap_faulted_to_unfaulted_prev_unfaulted_next", mremap_faulted_to_unfaulted_prev_unfaulted_next, 1},
    {"mremap_faulted_to_unfaulted_prev_faulted_next", mremap_faulted_to_unfaulted_prev_faulted_next, 1},
};

static void run(const struct test *t, const char *variant) {
    pid_t pid = fork();
    if (pid == 0) {
        line[0] = 0;
        failed = 0;
        say("%s%s%s:", t->name, variant ? "/" : "", variant ? variant : "");
        carveout = mmap((void *)BASE, 30 * P, PROT_NONE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED_NOREPLACE, -1, 0);
        if (carveout != (char *)BASE) {
            say(" | FAIL carveout\n");
        } else {
            t->fn();
            if (parent_of_fork)
                _exit(0);
            if (!strchr(line, '\n')) { /* the case ran to its end in this process */
                list_window();
                say(" | %s\n", failed ? "FAIL" : "pass");
            }
        }
        if (write(1, line, strlen(line)) < 0)
            _exit(1);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
}

static void wait_line(const char *say_this) {
    char buf[16];
    printf("%s\n", say_this);
    fflush(stdout);
    if (!fgets(buf, sizeof buf, stdin))
        exit(1);
}

/* Count mode, `merge_selftest NAME` (NAME or NAME/unforked, not a forking case): map the
 * carveout, print "ready", wait for a line, run the case's body with its queries turned
 * off (no allocation but the case's own), print "done", wait for a line, exit. The perf
 * kmem counters of tests/mm/test_merge_selftest.py are read at the two waits. */
static int count_mode(const char *name) {
    char base[128];
    const char *slash = strchr(name, '/');
    size_t n = slash ? (size_t)(slash - name) : strlen(name);
    if (n >= sizeof base || (slash && strcmp(slash, "/unforked")))
        return 2;
    memcpy(base, name, n);
    base[n] = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (strcmp(tests[i].name, base) || tests[i].with_fork != !!slash)
            continue;
        counting = 1;
        carveout = mmap((void *)BASE, 30 * P, PROT_NONE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED_NOREPLACE, -1, 0);
        if (carveout != (char *)BASE)
            return 3;
        wait_line("ready");
        tests[i].fn();
        wait_line("done");
        return strchr(line, '\n') ? 4 : 0;
    }
    return 2;
}

int main(int argc, char **argv) {
    if (argc == 2)
        return count_mode(argv[1]);
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (!tests[i].with_fork) {
            run(&tests[i], NULL);
            continue;
        }
        forked = 1;
        run(&tests[i], "forked");
        forked = 0;
        run(&tests[i], "unforked");
    }
    return 0;
}
