/*
 * kdriver: the real-kernel side of `rmapsim validate-kernel`.
 *
 * A small static program with few VMAs that performs one named scenario for real, so the
 * kernel's slab allocations of anon_vma / anon_vma_chain / vm_area_struct can be counted
 * (by perf tracepoint counters inherited over the whole process tree) and compared with
 * what rmapsim predicts for the same operations.
 *
 *   kdriver SCENARIO N PAGES
 *
 * Protocol: at start the driver prints "ready <pid>" and blocks reading one byte from
 * stdin, so the caller can read /proc/<pid>/smaps and attach counters first. Then it runs
 * the scenario and exits 0 once every process it created has been reaped. Scenario
 * process trees are fully serialised (pipes), so the kernel sees the operations in the
 * same order rmapsim replays them. Errors print to stderr and exit 1; so does a child that
 * dies before reporting (the parent polls its report pipe and reaps dead children while it
 * waits, so it never blocks on a process that is gone).
 *
 * Testing hook: with KDRIVER_KILL_CHILD=K in the environment, the K-th process forked
 * (counting along each line of descent) kills itself with SIGKILL right after fork, before
 * it reports; the driver must then exit 1 promptly with a message.
 *
 * The region under test is mapped MAP_FIXED_NOREPLACE at REGION so it never merges with
 * the program's own mappings; mremap moves go to MOVED.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define REGION ((char *)0x200000000000UL)
#define MOVED ((char *)0x300000000000UL)
#define PG 4096UL

static long pages;
static long forks, kill_child;

static void die(const char *what) {
    fprintf(stderr, "kdriver: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void write_pages(char *base, long first, long count) {
    for (long i = first; i < first + count; i++)
        base[i * PG] = (char)(i + 1);
}

static char *map_region(long npages) {
    char *p = mmap(REGION, npages * PG, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != REGION)
        die("mmap region");
    return p;
}

static pid_t xfork(void) {
    forks++;
    pid_t p = fork();
    if (p < 0)
        die("fork");
    if (p == 0 && kill_child && forks == kill_child)
        kill(getpid(), SIGKILL);
    return p;
}

static void describe_failure(pid_t p, int st) {
    if (WIFSIGNALED(st))
        fprintf(stderr, "kdriver: process %d killed by signal %d\n", p, WTERMSIG(st));
    else
        fprintf(stderr, "kdriver: process %d failed (exit %d)\n", p, WEXITSTATUS(st));
}

static void reap_all(void) {
    int st;
    for (;;) {
        pid_t p = wait(&st);
        if (p < 0) {
            if (errno == ECHILD)
                return;
            die("wait");
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            describe_failure(p, st);
            exit(1);
        }
    }
}

/* One byte on `fd` (blocking); used as a baton between processes. End of file (every
 * writer gone: the process that should have written died) is an error. */
static void wait_byte(int fd) {
    char c;
    ssize_t r;
    do
        r = read(fd, &c, 1);
    while (r < 0 && errno == EINTR);
    if (r == 0) {
        fprintf(stderr, "kdriver: pipe closed before the expected byte: the process that should "
                        "have written it is gone\n");
        exit(1);
    }
    if (r != 1)
        die("wait_byte");
}

/*
 * A parent waiting for a child's report: poll the pipe, and every 100 ms reap children that
 * have ended (WNOHANG). One that was killed or failed has died before reporting (a child
 * reports before it ends), so the driver exits 1 instead of waiting forever. Children that
 * ended normally (exited generations of chain_exit) are simply reaped early.
 */
static void wait_child_byte(int fd) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    for (;;) {
        int r = poll(&pfd, 1, 100);
        if (r < 0 && errno != EINTR)
            die("poll");
        if (r > 0) {
            wait_byte(fd);
            return;
        }
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0)
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                describe_failure(p, st);
                fprintf(stderr, "kdriver: a child died before reporting\n");
                exit(1);
            }
    }
}

static void send_byte(int fd) {
    if (write(fd, "x", 1) != 1)
        die("send_byte");
}

/*
 * Fork `n` children of the driver, one at a time. Each child runs `child(i)` as soon as it
 * exists, then reports on `done` and sleeps until `release` closes; the parent forks the next
 * child only after the previous one reported, so the kernel sees fork, child work, fork,
 * child work, ... exactly as the simulator replays it.
 */
static void storm(long n, void (*child)(long), void (*after)(long)) {
    int done[2], release[2];
    if (pipe(done) || pipe(release))
        die("pipe");
    for (long i = 0; i < n; i++) {
        if (xfork() == 0) {
            close(release[1]);
            if (child)
                child(i);
            send_byte(done[1]);
            char c;
            while (read(release[0], &c, 1) > 0) {
            }
            _exit(0);
        }
        wait_child_byte(done[0]);
    }
    if (after)
        after(n);
    close(release[1]);
    reap_all();
}

static void child_cow(long i) {
    (void)i;
    write_pages(REGION, 0, pages);
}

static void child_split(long i) {
    (void)i;
    write_pages(REGION, 0, pages);
    if (mprotect(REGION + PG, PG, PROT_READ))
        die("mprotect");
}

static void child_mremap(long i) {
    (void)i;
    write_pages(REGION, 0, pages);
    void *p = mremap(REGION, pages * PG, pages * PG, MREMAP_MAYMOVE | MREMAP_FIXED, MOVED);
    if (p != MOVED)
        die("mremap");
}

static void child_munmap(long i) {
    (void)i;
    if (munmap(REGION, PG))
        die("munmap");
}

/* Parent-side splits: after the storm, mprotect pages 1, 3, 5, ... read-only. */
static long split_count;
static void parent_splits(long n) {
    (void)n;
    for (long k = 0; k < split_count; k++)
        if (mprotect(REGION + (2 * k + 1) * PG, PG, PROT_READ))
            die("mprotect");
}

/*
 * A generation chain of `n` forks. keep_parents: every generation stays alive until its
 * child exits. Otherwise each generation exits right after forking, and the child waits
 * until it has been reparented to the driver (a child subreaper) before it writes and forks.
 */
static void chain(long n, int keep_parents) {
    pid_t top = getpid();
    if (!keep_parents && prctl(PR_SET_CHILD_SUBREAPER, 1))
        die("prctl");
    int done[2];
    if (pipe(done))
        die("pipe");
    for (long g = 0; g < n; g++) {
        pid_t me = getpid();
        pid_t c = xfork();
        if (c > 0) {
            if (keep_parents) {
                int st;
                if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st)) {
                    describe_failure(c, st);
                    _exit(1);
                }
                if (me == top)
                    return;
                _exit(0);
            }
            if (me == top) {
                close(done[1]); /* EOF once every generation holding it is gone */
                wait_child_byte(done[0]);
                reap_all();
                return;
            }
            _exit(0);
        }
        if (!keep_parents && me != top)
            while (getppid() == me)
                usleep(100);
        write_pages(REGION, 0, pages);
    }
    /* The last generation. */
    if (!keep_parents)
        send_byte(done[1]);
    _exit(0);
}

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static int swapped(char *addr) {
    FILE *f = fopen("/proc/self/pagemap", "rb");
    if (!f)
        die("pagemap");
    unsigned long long e = 0;
    if (fseek(f, (long)((unsigned long)addr / PG * 8), SEEK_SET) || fread(&e, 8, 1, f) != 1)
        die("pagemap read");
    fclose(f);
    return (int)((e >> 62) & 1);
}

/*
 * Pageout (both scenarios): the driver has written 2*span pages and forks n children, one
 * by one. Pages [0, span) are then kept only by the first child and [span, 2*span) only by
 * the last (everyone else drops them with MADV_DONTNEED), and each keeper pages its half
 * out with MADV_PAGEOUT. The kernel's try_to_unmap walks the driver's anon_vma in fork
 * order and stops at the only mapping, so the last child's pages cost n - 1 more VMA
 * visits each than the first child's.
 *   pageout (span 1):         each keeper prints "swapped <half> <0|1>" from pagemap;
 *   pageout_time (span PAGES): "pageout_ns first|last <ns> <swapped pages>".
 */
static void keepers(long n, long span, int timed) {
    int done[2], release[2];
    if (pipe(done) || pipe(release))
        die("pipe");
    int *gos = calloc((size_t)n, sizeof(int));
    for (long i = 0; i < n; i++) {
        int go[2];
        if (pipe(go))
            die("pipe");
        if (xfork() == 0) {
            close(release[1]);
            close(go[1]); /* so a dead parent means end of file on go[0] */
            for (long j = 0; j < i; j++)
                close(gos[j]);
            send_byte(done[1]);
            long keep = i == 0 ? 0 : (i == n - 1 ? 1 : -1);
            wait_byte(go[0]);
            for (long half = 0; half < 2; half++)
                if (half != keep && madvise(REGION + half * span * PG, span * PG, MADV_DONTNEED))
                    die("madvise dontneed");
            send_byte(done[1]);
            wait_byte(go[0]);
            if (keep >= 0) {
                char *base = REGION + keep * span * PG;
                long t0 = now_ns();
                if (madvise(base, span * PG, MADV_PAGEOUT))
                    die("madvise pageout");
                long dt = now_ns() - t0;
                long sw = 0;
                for (long p = 0; p < span; p++)
                    sw += swapped(base + p * PG);
                if (timed)
                    printf("pageout_ns %s %ld %ld\n", keep == 0 ? "first" : "last", dt, sw);
                else
                    printf("swapped %ld %ld\n", keep, sw);
                fflush(stdout);
            }
            send_byte(done[1]);
            char c;
            while (read(release[0], &c, 1) > 0) {
            }
            _exit(0);
        }
        close(go[0]);
        gos[i] = go[1];
        wait_child_byte(done[0]);
    }
    if (madvise(REGION, 2 * span * PG, MADV_DONTNEED))
        die("madvise dontneed");
    for (long step = 0; step < 2; step++) /* everyone drops its pages, then the keepers page out */
        for (long i = 0; i < n; i++) {
            send_byte(gos[i]);
            wait_child_byte(done[0]);
        }
    close(release[1]);
    reap_all();
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: kdriver SCENARIO N PAGES\n");
        return 2;
    }
    const char *scen = argv[1];
    long n = atol(argv[2]);
    pages = atol(argv[3]);
    if (n < 0 || pages < 2) {
        fprintf(stderr, "kdriver: bad N or PAGES\n");
        return 2;
    }
    const char *kc = getenv("KDRIVER_KILL_CHILD");
    kill_child = kc ? atol(kc) : 0;
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("ready %d\n", getpid());
    wait_byte(0);

    if (!strcmp(scen, "split_parent")) {
        split_count = n;
        map_region(2 * n + 1);
        pages = 2 * n + 1;
        write_pages(REGION, 0, pages);
        storm(2, NULL, parent_splits);
        return 0;
    }
    if (!strcmp(scen, "pageout_time")) {
        map_region(2 * pages);
        write_pages(REGION, 0, 2 * pages);
        if (n < 2)
            die("pageout_time needs N >= 2");
        keepers(n, pages, 1);
        return 0;
    }
    map_region(pages);
    write_pages(REGION, 0, pages);
    if (!strcmp(scen, "fork"))
        storm(n, NULL, NULL);
    else if (!strcmp(scen, "fork_cow"))
        storm(n, child_cow, NULL);
    else if (!strcmp(scen, "split_children"))
        storm(n, child_split, NULL);
    else if (!strcmp(scen, "mremap_children"))
        storm(n, child_mremap, NULL);
    else if (!strcmp(scen, "munmap_exit"))
        storm(n, child_munmap, NULL);
    else if (!strcmp(scen, "chain_alive"))
        chain(n, 1);
    else if (!strcmp(scen, "chain_exit"))
        chain(n, 0);
    else if (!strcmp(scen, "pageout"))
        keepers(n, 1, 0);
    else {
        fprintf(stderr, "kdriver: unknown scenario %s\n", scen);
        return 2;
    }
    return 0;
}
