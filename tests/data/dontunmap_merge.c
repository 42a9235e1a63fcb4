/* Does MREMAP_DONTUNMAP leave the source VMA with its anon_vma? Seen through a merge, on the
 * live kernel; tests/mm/test_mremap_dontunmap.py replays it on the simulator and compares with
 * tests/data/dontunmap_merge.out. Build: cc -O0 -o dontunmap_merge dontunmap_merge.c
 *
 * A = [S, S+2P) and C = [S+3P, S+5P), both rw and written (two anon_vmas). A (whole: both
 * pages; partial: its first page) moves to D with MREMAP_DONTUNMAP; then the hole
 * [S+2P, S+3P) is mapped rw. It merges with both neighbours into one VMA only if A no longer
 * has an anon_vma (is_mergeable_anon_vma: two different anon_vmas never merge). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define P 4096UL

static void maps(unsigned long lo, unsigned long hi) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long s, e;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s >= lo && e <= hi)
            printf("vma %#lx %#lx\n", s, e);
    fclose(f);
}

int main(void) {
    int fixed = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    for (int whole = 1; whole >= 0; whole--) {
        unsigned long s = whole ? 0x10000000UL : 0x30000000UL, d = s + 0x10000000UL;
        char *a = mmap((void *)s, 2 * P, PROT_READ | PROT_WRITE, fixed, -1, 0);
        memset(a, 1, 2 * P);
        memset(mmap((void *)(s + 3 * P), 2 * P, PROT_READ | PROT_WRITE, fixed, -1, 0), 2, 2 * P);
        unsigned long len = whole ? 2 * P : P;
        void *r = mremap(a, len, len, MREMAP_MAYMOVE | MREMAP_FIXED | 4 /* MREMAP_DONTUNMAP */, (void *)d);
        printf("%s %#lx\n", whole ? "whole" : "partial", (unsigned long)r);
        mmap((void *)(s + 2 * P), P, PROT_READ | PROT_WRITE, fixed, -1, 0);
        maps(s, s + 0x100000);
    }
    return 0;
}
