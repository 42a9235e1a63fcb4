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
 * - (neither), from /proc/self/pagemap; "data" the bytes read at the end. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
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
    return 0;
}
