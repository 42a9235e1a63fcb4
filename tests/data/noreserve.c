/* MAP_NORESERVE (VM_NORESERVE) and VM_ACCOUNT on the live kernel; tests/mm/test_noreserve.py
 * replays the same calls on the simulator and compares with the recorded output
 * (tests/data/noreserve.out). Build: cc -O0 -o noreserve noreserve.c
 *
 * Adjacent anonymous ranges with and without MAP_NORESERVE, writable and read-only; some
 * made writable by mprotect; a MAP_NORESERVE range moved by mremap next to an ordinary
 * one; then the VMAs of both windows, as the parent sees them and as a forked child does.
 * Each VMA line: range, perms, and which of the smaps VmFlags "ac" (VM_ACCOUNT) and "nr"
 * (VM_NORESERVE) it has ("-": neither). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define P 4096UL
#define SRC 0x10000000UL
#define DST 0x20000000UL

static void map(unsigned long addr, unsigned long len, int prot, int extra) {
    if (mmap((void *)addr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | extra, -1, 0) == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
}

static void protect(unsigned long addr, unsigned long len, int prot) {
    if (mprotect((void *)addr, len, prot)) {
        perror("mprotect");
        exit(1);
    }
}

/* the VMAs in [SRC, SRC+0x1000000) and [DST, DST+0x1000000) with their ac/nr flags */
static void dump(const char *who) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512], perms[8] = "";
    unsigned long s = 0, e = 0;
    int ours = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char p[8];
        if (sscanf(line, "%lx-%lx %7s", &a, &b, p) == 3 && strchr(line, ':') > strchr(line, ' ')) {
            s = a, e = b;
            memcpy(perms, p, 3);
            perms[3] = 0;
            ours = (s >> 24) == (SRC >> 24) || (s >> 24) == (DST >> 24);
        } else if (ours && strncmp(line, "VmFlags:", 8) == 0) {
            int ac = strstr(line, " ac") != NULL, nr = strstr(line, " nr") != NULL;
            printf("%s %#lx %#lx %s %s\n", who, s, e, perms, ac && nr ? "ac nr" : ac ? "ac" : nr ? "nr" : "-");
        }
    }
    fclose(f);
}

int main(void) {
    const int RW = PROT_READ | PROT_WRITE, R = PROT_READ, NR = MAP_NORESERVE;
    map(SRC, 2 * P, RW, 0);           /* A: rw, charged (ac) */
    map(SRC + 2 * P, 2 * P, RW, NR);  /* N: rw, nr: does not merge with A */
    map(SRC + 4 * P, 2 * P, RW, NR);  /* merges with N: [SRC+2P, SRC+6P) */
    map(SRC + 6 * P, 2 * P, R, 0);    /* read-only, neither flag */
    map(SRC + 8 * P, 2 * P, R, NR);   /* read-only nr: does not merge with the one before */
    map(SRC + 10 * P, 2 * P, RW, NR); /* rw nr: prot differs from its prev, no merge */
    dump("step1");
    protect(SRC + 6 * P, 2 * P, RW);  /* first made writable: charged, gets ac, no merge with N */
    protect(SRC + 8 * P, 2 * P, RW);  /* nr: not charged, merges with the rw nr after it */
    protect(SRC + 3 * P, P, R);       /* splits N in three */
    protect(SRC + 3 * P, P, RW);      /* ...and merges it back, still without ac */
    memset((void *)SRC, 1, P);        /* faults: A and N get anon_vmas */
    memset((void *)(SRC + 2 * P), 1, P);
    map(DST, 2 * P, RW, 0);           /* X: rw ac */
    if (mremap((void *)(SRC + 4 * P), 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(DST + 2 * P)) ==
        MAP_FAILED) {
        perror("mremap");
        return 1;
    }
    dump("parent");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dump("child");
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    return status != 0;
}
