/* The merge that keeps next, on the live kernel: tests/mm/test_vma_merge_next.py counts
 * this program's kmem_cache_alloc/free of anon_vma_chain and vm_area_struct (perf
 * tracepoint counters, the filters of `rmapsim validate-kernel`) around its final mprotect
 * and compares them with the simulator (recorded in tests/data/merge_next.out).
 * Build: cc -O0 -o merge_next merge_next.c; run: merge_next CASE MERGE
 *
 * CASE next:   M = [39, 45) read-only unfaulted, N = [45, 53) read-write, 3 pages written
 *              (the example).
 * CASE middle: M written while read-write, then made read-only; N unfaulted.
 * MERGE 1: mprotect M read-write (the merge); 0: not (the baseline).
 * The program sets the layout up, prints "ready" and waits for a line on stdin (the
 * counters are read then), does the mprotect, prints "done" and waits for a second line
 * (the counters are read again) before it exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define P 4096UL
#define BASE 0x30000000UL
#define PG(n) ((char *)(BASE + (n) * P))

static void wait_line(const char *say) {
    char buf[16];
    printf("%s\n", say);
    fflush(stdout);
    if (!fgets(buf, sizeof buf, stdin))
        exit(1);
}

int main(int argc, char **argv) {
    int anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, rw = PROT_READ | PROT_WRITE;
    if (argc != 3)
        return 2;
    if (!strcmp(argv[1], "next")) {
        mmap(PG(39), 6 * P, PROT_READ, anon, -1, 0);
        mmap(PG(45), 8 * P, rw, anon, -1, 0);
        memset(PG(45), 1, 3 * P);
    } else {
        mmap(PG(39), 6 * P, rw, anon, -1, 0);
        memset(PG(39), 1, 3 * P);
        mprotect(PG(39), 6 * P, PROT_READ);
        mmap(PG(45), 8 * P, rw, anon, -1, 0);
    }
    wait_line("ready");
    if (argv[2][0] == '1' && mprotect(PG(39), 6 * P, rw))
        return 3;
    wait_line("done");
    return 0;
}
