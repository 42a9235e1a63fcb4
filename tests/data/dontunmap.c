/* mremap(MREMAP_DONTUNMAP) (Linux 5.7+) and mmap(MAP_FIXED_NOREPLACE) (4.17+), run on the live
 * kernel; tests/mm/test_mremap_dontunmap.py and tests/mm/test_map_fixed_noreplace.py replay
 * the same calls on the simulator and compare with the recorded output
 * (tests/data/dontunmap.out). Build: cc -O0 -o dontunmap dontunmap.c
 *
 * A = [SRC, SRC+4P) rw written (bytes 1..4), moved whole to DST with DONTUNMAP; then
 * B = [SRC+8P, SRC+12P) rw written (5..8), its middle two pages moved to DST+8P with
 * DONTUNMAP; refused calls (errno); NOREPLACE over A's old place and beside it. Output: one
 * line per call; each page of the windows as p (present), s (swapped) or - from
 * /proc/self/pagemap; the bytes read back; the VMAs of the windows. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#define P 4096UL
#define SRC 0x10000000UL
#define DST 0x20000000UL

static int pagemap;

static char state(unsigned long addr) {
    uint64_t e = 0;
    if (pread(pagemap, &e, sizeof e, (addr / P) * 8) != sizeof e)
        return '?';
    return e >> 63 & 1 ? 'p' : e >> 62 & 1 ? 's' : '-';
}

static void show(const char *name, unsigned long base, int n) {
    printf("pages %s ", name);
    for (int i = 0; i < n; i++)
        putchar(state(base + i * P));
    putchar('\n');
}

static void remap(const char *name, unsigned long old, unsigned long old_len, unsigned long new_len, int flags,
                  unsigned long new_addr) {
    void *r = mremap((void *)old, old_len, new_len, flags, (void *)new_addr);
    if (r == MAP_FAILED)
        printf("call %s errno %d\n", name, errno);
    else
        printf("call %s ok %#lx\n", name, (unsigned long)r);
}

static void map(const char *name, unsigned long addr, unsigned long len, int extra) {
    void *r = mmap((void *)addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
    if (r == MAP_FAILED)
        printf("call %s errno %d\n", name, errno);
    else
        printf("call %s ok %#lx\n", name, (unsigned long)r);
}

int main(void) {
    pagemap = open("/proc/self/pagemap", O_RDONLY);
    int mv = MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP;
    char *a = mmap((void *)SRC, 4 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    char *b = mmap((void *)(SRC + 8 * P), 4 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    for (int i = 0; i < 4; i++) {
        a[i * P] = 1 + i;
        b[i * P] = 5 + i;
    }
    remap("whole", SRC, 4 * P, 4 * P, mv, DST);
    remap("middle", SRC + 9 * P, 2 * P, 2 * P, mv, DST + 8 * P);
    show("src", SRC, 12);
    show("dst", DST, 12);
    remap("grow", SRC + 8 * P, P, 2 * P, mv, DST + 16 * P);
    remap("nomaymove", SRC + 8 * P, P, P, MREMAP_DONTUNMAP, 0);
    remap("span", SRC + 2 * P, 8 * P, 8 * P, mv, DST + 20 * P);
    remap("hole", SRC + 5 * P, P, P, mv, DST + 20 * P);
    printf("data %d %d %d %d %d %d %d\n", a[0], ((char *)DST)[0], ((char *)DST)[3 * P], b[P], b[3 * P],
           ((char *)DST)[8 * P], ((char *)DST)[9 * P]);
    show("src-read", SRC, 12);
    map("noreplace-over", SRC + 2 * P, 2 * P, MAP_FIXED_NOREPLACE);
    map("noreplace-beside", SRC + 4 * P, 2 * P, MAP_FIXED_NOREPLACE);
    map("noreplace-gap", SRC + 6 * P, 4 * P, MAP_FIXED_NOREPLACE);
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long s, e;
    char perms[8];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3 && ((s >> 28) == 1 || (s >> 28) == 2) && e <= 0x30000000UL)
            printf("vma %#lx %#lx %.3s\n", s, e, perms);
    return 0;
}
