/* MADV_FREE (Linux 4.5+) and reclaim, run on the live kernel; tests/mm/test_madv_free.py
 * replays the same calls on the simulator and compares with the recorded output
 * (tests/data/madv_free.out). Build: cc -O0 -o madv_free madv_free.c; run as root with a
 * swap area active (the test makes one with rmapsim.tools.kernel.swapfile).
 *
 * A = [SRC, SRC+4P) rw, every page written; MADV_FREE over all of it; page 1 written again;
 * MADV_PAGEOUT over all of it (the clean lazy-free pages are discarded, the re-dirtied one is
 * re-marked swap-backed and stays); MADV_PAGEOUT again (now it is swapped). Then
 * B = [SRC+8P, SRC+10P) rw written, paged out (swapped), MADV_FREE (the swap entries are
 * dropped). Each "state" line gives every page of A and B as p (present), s (swapped) or
 * - (neither), from /proc/self/pagemap; "data" the bytes read at the end. Then C = [SRC+12P,
 * SRC+14P) rw written, shared with a child: MADV_FREE of C's first page while the child maps
 * it marks it lazy-free all the same (neither in the swap cache nor PG_dirty: no mapcount
 * test), the child exits, C's second page is MADV_FREE'd, and MADV_PAGEOUT discards both
 * ("shared" line: C's two pages). Last, D = [SRC+16P, SRC+21P) rw written, the per-entry dirty
 * bits: d2 is paged out and written again (swapped in by a write: PG_dirty), d1, d3 and d4
 * are MADV_FREE'd while mapped once (their entries cleaned), d3 is written again, d3 and d4
 * move (mremap) to SRC+24P and SRC+25P and are paged out there ("moved" line: the dirty one
 * stays, the clean one goes); then a child is forked, the parent MADV_FREEs d0 (shared,
 * marked; only the parent's entry is cleaned) and d2 (shared with PG_dirty: skipped) and
 * maps fresh pages over d0..d2, and the child pages out d0..d2 twice ("child" lines: its own
 * dirty entry makes d0 swap-backed again, then it is swapped; d1's copied clean entry is
 * discarded; d2 is swapped). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#define P 4096UL
#define SRC 0x10000000UL

static int pagemap;

static char state(unsigned long addr) {
    uint64_t e = 0;
    if (pread(pagemap, &e, sizeof e, (addr / P) * 8) != sizeof e)
        return '?';
    if (e >> 63 & 1)
        return 'p';
    if (e >> 62 & 1)
        return 's';
    return '-';
}

static void show(const char *when) {
    printf("state %s ", when);
    for (int i = 0; i < 4; i++)
        putchar(state(SRC + i * P));
    putchar(' ');
    for (int i = 8; i < 10; i++)
        putchar(state(SRC + i * P));
    putchar('\n');
}

static void advise(const char *name, unsigned long addr, unsigned long len, int advice) {
    if (madvise((void *)addr, len, advice))
        printf("call %s errno %d\n", name, errno);
    else
        printf("call %s ok\n", name);
}

int main(void) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof one, &one); /* the per-CPU LRU batches drain where we run */
    pagemap = open("/proc/self/pagemap", O_RDONLY);
    int anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    char *a = mmap((void *)SRC, 4 * P, PROT_READ | PROT_WRITE, anon, -1, 0);
    char *b = mmap((void *)(SRC + 8 * P), 2 * P, PROT_READ | PROT_WRITE, anon, -1, 0);
    memset(a, 1, 4 * P);
    memset(b, 2, 2 * P);
    show("written");
    advise("free-a", SRC, 4 * P, MADV_FREE);
    show("freed");
    a[P] = 3;
    advise("pageout-a", SRC, 4 * P, MADV_PAGEOUT);
    show("pageout-1");
    advise("pageout-a-again", SRC, 4 * P, MADV_PAGEOUT);
    show("pageout-2");
    advise("pageout-b", SRC + 8 * P, 2 * P, MADV_PAGEOUT);
    show("b-out");
    advise("free-b", SRC + 8 * P, 2 * P, MADV_FREE);
    show("b-freed");
    printf("data %d %d %d %d %d\n", a[0], a[P], a[2 * P], b[0], b[P]);
    show("read");
    char *c = mmap((void *)(SRC + 12 * P), 2 * P, PROT_READ | PROT_WRITE, anon, -1, 0);
    memset(c, 4, 2 * P);
    int go[2];
    if (pipe(go))
        return 1;
    pid_t child = fork();
    if (child == 0) {
        char x;
        close(go[1]);
        while (read(go[0], &x, 1) > 0) /* until the parent has advised */
            ;
        _exit(0);
    }
    close(go[0]);
    advise("free-c-shared", SRC + 12 * P, P, MADV_FREE);
    close(go[1]);
    waitpid(child, NULL, 0);
    advise("free-c-alone", SRC + 13 * P, P, MADV_FREE);
    advise("pageout-c", SRC + 12 * P, 2 * P, MADV_PAGEOUT);
    printf("shared %c%c\n", state(SRC + 12 * P), state(SRC + 13 * P));
    char *d = mmap((void *)(SRC + 16 * P), 5 * P, PROT_READ | PROT_WRITE, anon, -1, 0);
    memset(d, 5, 5 * P);
    advise("pageout-d2", SRC + 18 * P, P, MADV_PAGEOUT);
    d[2 * P] = 6;
    advise("free-d1", SRC + 17 * P, P, MADV_FREE);
    advise("free-d3-d4", SRC + 19 * P, 2 * P, MADV_FREE);
    d[3 * P] = 7;
    int move = MREMAP_MAYMOVE | MREMAP_FIXED;
    if (mremap(d + 3 * P, P, P, move, (void *)(SRC + 24 * P)) == MAP_FAILED ||
        mremap(d + 4 * P, P, P, move, (void *)(SRC + 25 * P)) == MAP_FAILED)
        return 1;
    advise("pageout-moved", SRC + 24 * P, 2 * P, MADV_PAGEOUT);
    printf("moved %c%c\n", state(SRC + 24 * P), state(SRC + 25 * P));
    fflush(stdout);
    if (pipe(go))
        return 1;
    child = fork();
    if (child == 0) {
        char x;
        close(go[1]);
        while (read(go[0], &x, 1) > 0) /* until the parent has advised and remapped */
            ;
        close(pagemap);
        pagemap = open("/proc/self/pagemap", O_RDONLY); /* the child's own */
        for (int round = 1; round <= 2; round++) {
            advise("child-pageout", SRC + 16 * P, 3 * P, MADV_PAGEOUT);
            printf("child-%d %c%c%c\n", round, state(SRC + 16 * P), state(SRC + 17 * P), state(SRC + 18 * P));
        }
        fflush(stdout);
        _exit(0);
    }
    close(go[0]);
    advise("free-d0-shared", SRC + 16 * P, P, MADV_FREE);
    advise("free-d2-shared", SRC + 18 * P, P, MADV_FREE);
    mmap((void *)(SRC + 16 * P), 3 * P, PROT_READ | PROT_WRITE, anon, -1, 0);
    fflush(stdout);
    close(go[1]);
    waitpid(child, NULL, 0);
    return 0;
}
