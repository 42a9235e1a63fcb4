/* Linux 6.17+ mremap of a range over several VMAs (remap_move), run on the live kernel;
 * tests/mm/test_mremap_multi.py replays the same calls on the simulator and compares with the
 * recorded output (tests/data/mremap_multi.out). Build: cc -O0 -o mremap_multi mremap_multi.c
 *
 * Layout: A = [SRC, SRC+2P) rw written, a one-page hole, B = [SRC+3P, SRC+5P) r read,
 * C = [SRC+5P, SRC+7P) rw written. Output: one line per call, then the VMAs in the two
 * windows. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define P 4096UL
#define SRC 0x10000000UL
#define DST 0x20000000UL

static void call(const char *name, unsigned long old, unsigned long old_len, unsigned long new_len,
                 unsigned long new_addr) {
    void *r = mremap((void *)old, old_len, new_len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)new_addr);
    if (r == MAP_FAILED)
        printf("call %s errno %d\n", name, errno);
    else
        printf("call %s ok %#lx\n", name, (unsigned long)r);
}

int main(void) {
    char *src = (char *)SRC;
    int anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    memset(mmap(src, 2 * P, PROT_READ | PROT_WRITE, anon, -1, 0), 1, 2 * P);
    volatile char x = *(char *)mmap(src + 3 * P, 2 * P, PROT_READ, anon, -1, 0);
    (void)x;
    memset(mmap(src + 5 * P, 2 * P, PROT_READ | PROT_WRITE, anon, -1, 0), 2, 2 * P);
    call("move-all", SRC, 7 * P, 7 * P, DST);
    call("gap-at-start", DST + 2 * P, 3 * P, 3 * P, SRC);
    call("resize", DST, 7 * P, 8 * P, SRC);
    call("partial", DST + P, 5 * P, 5 * P, SRC);
    call("gap-at-end", DST + 6 * P, 3 * P, 3 * P, SRC + 16 * P);
    printf("data %d %d %d\n", src[0], src[4 * P], src[16 * P]);
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long s, e;
    char perms[8];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3 && ((s >> 28) == 1 || (s >> 28) == 2) && e <= 0x30000000UL)
            printf("vma %#lx %#lx %.3s\n", s, e, perms);
    return 0;
}
