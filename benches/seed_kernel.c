/*
 * The seed scenario on the real kernel: the parent maps P private anonymous pages and
 * writes them, forks N children, each child writes every page (N x P COW faults) and then
 * waits until every child has done so (all N + 1 address spaces alive together, as in the
 * simulator's final state), then all exit and the parent reaps them.
 *
 * Usage: seed_kernel N P      prints "seconds <wall time>" (CLOCK_MONOTONIC, from before
 *                             the mmap to after the last child is reaped)
 * Built by benches/bench_e2e.py with `cc -O2`.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s N P\n", argv[0]);
		return 2;
	}
	long n = atol(argv[1]), p = atol(argv[2]);
	long pg = sysconf(_SC_PAGESIZE);
	int ready[2], release[2];
	if (n < 1 || p < 1 || pipe(ready) || pipe(release)) {
		perror("seed_kernel: bad arguments or pipe");
		return 2;
	}
	double t0 = now();
	volatile char *a = mmap(NULL, p * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (long i = 0; i < p; i++)
		a[i * pg] = 1; /* do_anonymous_page */
	for (long c = 0; c < n; c++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			char b;
			close(ready[0]);
			close(release[1]);
			for (long i = 0; i < p; i++)
				a[i * pg] = 2; /* do_wp_page: COW copy */
			if (write(ready[1], "x", 1) != 1)
				_exit(1);
			while (read(release[0], &b, 1) > 0) /* EOF when the parent releases all */
				;
			_exit(0);
		}
	}
	close(ready[1]);
	close(release[0]);
	char b;
	for (long c = 0; c < n; c++)
		if (read(ready[0], &b, 1) != 1) {
			fprintf(stderr, "seed_kernel: a child died early\n");
			return 1;
		}
	close(release[1]); /* every child has written every page: let them exit */
	for (long c = 0; c < n; c++)
		wait(NULL);
	munmap((void *)a, p * pg);
	printf("seconds %.6f\n", now() - t0);
	return 0;
}
