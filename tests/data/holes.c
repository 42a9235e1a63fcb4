/* Ranges with holes and the mremap move that shrinks across a VMA boundary, run on the live
 * kernel; tests/mm/test_holes.py replays the same calls on the simulator (holes="kernel") and
 * compares with the recorded output (tests/data/holes.out). Build: cc -O0 -o holes holes.c
 *
 * Every case has its own pages of the window [BASE, BASE + 100 pages); "page N" below is
 * BASE + N * P. Output: one line per call (ok and the result, or the errno), one line with
 * the bytes read back after a MADV_DONTNEED, then every VMA of the window with its
 * permissions and whether it has VM_DONTCOPY (smaps "dc"). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define P 4096UL
#define BASE 0x30000000UL
#define PG(n) ((char *)(BASE + (n) * P))

static void map(int first, int pages, int prot) {
    if (mmap(PG(first), pages * P, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
        perror("mmap");
}

static void result(const char *name, long r) {
    if (r == -1)
        printf("call %s errno %d\n", name, errno);
    else
        printf("call %s ok %#lx\n", name, (unsigned long)r);
}

static void remap(const char *name, int first, int old_pages, int new_pages, int to) {
    void *r = to < 0 ? mremap(PG(first), old_pages * P, new_pages * P, 0)
                     : mremap(PG(first), old_pages * P, new_pages * P, MREMAP_MAYMOVE | MREMAP_FIXED, PG(to));
    result(name, r == MAP_FAILED ? -1 : (long)r);
}

int main(void) {
    int rw = PROT_READ | PROT_WRITE;
    /* shrink-move: the example, the tail [13, 18) crosses A's end into B */
    map(10, 4, rw);
    map(14, 4, PROT_NONE);
    memset(PG(12), 7, P);
    remap("shrink-move", 12, 4, 1, 40);
    /* shrink-move-hole: the unmapped tail has a hole */
    map(20, 2, rw);
    map(23, 2, rw);
    remap("shrink-move-hole", 20, 5, 1, 44);
    /* shrink-move-across: the kept part [27, 29) crosses a boundary */
    map(26, 2, rw);
    map(28, 2, PROT_READ);
    remap("shrink-move-across", 27, 3, 2, 48);
    /* shrink-hole: a shrink in place over a hole */
    map(50, 2, rw);
    map(53, 2, rw);
    remap("shrink-hole", 50, 5, 1, -1);
    /* shrink-unmapped: a shrink in place at an unmapped address */
    remap("shrink-unmapped", 58, 2, 1, -1);
    result("munmap-nothing", munmap(PG(60), 2 * P));
    /* mprotect-hole: stops at the hole */
    map(62, 2, PROT_READ);
    map(65, 2, PROT_READ);
    result("mprotect-hole", mprotect(PG(62), 5 * P, rw));
    /* mprotect-lead: a hole at the start changes nothing */
    map(70, 2, PROT_READ);
    result("mprotect-lead", mprotect(PG(69), 3 * P, rw));
    /* madvise-hole: goes on past the hole */
    map(74, 2, rw);
    map(77, 2, rw);
    result("madvise-hole", madvise(PG(74), 6 * P, MADV_DONTFORK));
    result("madvise-nothing", madvise(PG(82), 2 * P, MADV_DONTFORK));
    /* madvise-dontneed-hole: both VMAs zapped */
    map(86, 2, rw);
    map(89, 2, rw);
    memset(PG(86), 1, 2 * P);
    memset(PG(89), 2, 2 * P);
    result("madvise-dontneed-hole", madvise(PG(86), 5 * P, MADV_DONTNEED));
    printf("data %d %d %d\n", *PG(40), *PG(86), *PG(90));

    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512], perms[8] = "";
    unsigned long s = 0, e = 0;
    int in = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char pr[8];
        if (sscanf(line, "%lx-%lx %7s", &a, &b, pr) == 3) {
            s = a, e = b, in = a >= BASE && b <= BASE + 100 * P;
            memcpy(perms, pr, sizeof perms);
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            printf("vma %#lx %#lx %.3s %s\n", s, e, perms, strstr(line, " dc") ? "dc" : "-");
        }
    }
    return 0;
}
