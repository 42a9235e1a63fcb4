/* MADV_PAGEOUT of page-cache pages in private file mappings, run on the live kernel;
 * tests/mm/test_madv_pageout.py replays the same calls on the simulator and compares with
 * the recorded output (tests/data/pageout_file.out). Build: cc -O0 -o pageout_file pageout_file.c
 *
 * Each case prints the state of its pages after the call, from /proc/self/pagemap:
 * "-" no entry, "s" a swap entry, "f" a page-cache page (PM_FILE), "a" any other present
 * page (an anon page or the zero page). The file is written one page per write(), so the
 * page cache holds one page per folio, and fsync'd, so it is clean. The program runs on
 * CPU 0 only: MADV_PAGEOUT drains the LRU batch of its own CPU, where the faults left the
 * pages. No case pages out an exclusive anon page, so swap need not be on. Each case maps
 * its own pages of the file, and every process reads every page it maps: a read fault
 * maps the cached pages around it too (fault-around), which rmapsim does not model. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define P 4096UL
#define PAGES 16

static int fd;

static char state(char *a) {
    uint64_t e = 0;
    int pm = open("/proc/self/pagemap", O_RDONLY);
    if (pm < 0 || pread(pm, &e, 8, ((uintptr_t)a / P) * 8) != 8)
        return '?';
    close(pm);
    if (e >> 62 & 1)
        return 's';
    if (!(e >> 63 & 1))
        return '-';
    return e >> 61 & 1 ? 'f' : 'a';
}

static void show(const char *tag, char *a, int n) {
    printf("%s", tag);
    for (int i = 0; i < n; i++)
        printf(" %c", state(a + i * P));
    printf("\n");
    fflush(stdout);
}

static char *map_file(int pages, int prot, long pgoff) {
    char *m = mmap(0, pages * P, prot, MAP_PRIVATE, fd, pgoff * P);
    if (m == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return m;
}

static void readp(char *a, int n) {
    for (int i = 0; i < n; i++)
        (void)*(volatile char *)(a + i * P);
}

static void pageout(char *a, int n) {
    if (madvise(a, n * P, MADV_PAGEOUT))
        perror("madvise");
}

int main(void) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof(one), &one);
    char path[] = "/tmp/pageout_file.XXXXXX";
    fd = mkstemp(path);
    unlink(path);
    char page[P];
    memset(page, 'x', P);
    for (int i = 0; i < PAGES; i++)
        if (write(fd, page, P) != (ssize_t)P)
            return 1;
    fsync(fd);

    /* A: one process maps and reads 4 pages; MADV_PAGEOUT of page 1 drops it */
    char *a = map_file(4, PROT_READ, 0);
    readp(a, 4);
    pageout(a + P, 1);
    show("A", a, 4);

    /* B: page 0 written (an anon COW page, so the VMA has an anon_vma and fork copies
     * every entry), pages 1-3 read; after fork each page has two mappings and stays.
     * Once the child has exited, the parent's page-cache pages go. */
    char *b = map_file(4, PROT_READ | PROT_WRITE, 4);
    b[0] = 1;
    readp(b + P, 3);
    pid_t c = fork();
    if (c == 0) {
        pageout(b, 4);
        show("B child", b, 4);
        _exit(0);
    }
    waitpid(c, 0, 0);
    pageout(b + P, 3);
    show("B parent", b, 4);

    /* C: the same file page mapped twice in one process: two mappings, it stays; after
     * the second mapping is gone, it goes */
    char *c1 = map_file(1, PROT_READ, 8);
    char *c2 = map_file(1, PROT_READ, 8);
    readp(c1, 1);
    readp(c2, 1);
    pageout(c1, 1);
    show("C twice", c1, 1);
    munmap(c2, P);
    pageout(c1, 1);
    show("C once", c1, 1);

    /* D: an anonymous mapping read: the zero page, which MADV_PAGEOUT leaves alone */
    char *d = mmap(0, 2 * P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    readp(d, 2);
    pageout(d, 2);
    show("D", d, 2);

    /* E: a read-only file mapping without an anon_vma: fork copies no entry. The child
     * reads both pages: each has two mappings and stays. Once the child has unmapped
     * page 1, the parent's page-out drops page 1 and keeps page 0. */
    char *e = map_file(2, PROT_READ, 10);
    readp(e, 2);
    int go[2], done[2];
    if (pipe(go) || pipe(done))
        return 1;
    c = fork();
    if (c == 0) {
        char x;
        show("E child after fork", e, 2);
        readp(e, 2);
        if (write(done[1], "r", 1) != 1 || read(go[0], &x, 1) != 1)
            _exit(1);
        munmap(e + P, P);
        if (write(done[1], "u", 1) != 1 || read(go[0], &x, 1) != 1)
            _exit(1);
        show("E child", e, 1);
        _exit(0);
    }
    char x;
    if (read(done[0], &x, 1) != 1)
        return 1;
    pageout(e, 2);
    show("E parent, child mapping both", e, 2);
    if (write(go[1], "g", 1) != 1 || read(done[0], &x, 1) != 1)
        return 1;
    pageout(e, 2);
    show("E parent, child mapping page 0", e, 2);
    if (write(go[1], "g", 1) != 1)
        return 1;
    waitpid(c, 0, 0);
    return 0;
}
