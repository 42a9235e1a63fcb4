/* MAP_STACK on the live kernel: from Linux 6.7 it sets VM_NOHUGEPAGE (calc_vm_flag_bits,
 * with THP configured), so a MAP_STACK mapping does not merge with a plain anonymous
 * neighbour. tests/mm/test_map_stack.py replays the same calls on the simulator and compares
 * with the recorded output (tests/data/map_stack.out). Build: cc -O0 -o map_stack map_stack.c
 *
 * Prints each VMA in [BASE, BASE + 16 pages) with its perms and the `nh` (VM_NOHUGEPAGE)
 * and `ac` (VM_ACCOUNT) VmFlags from /proc/self/smaps. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define P 4096UL
#define BASE 0x10000000UL

static void map(unsigned long page, unsigned long pages, int extra) {
    mmap((void *)(BASE + page * P), pages * P, PROT_READ | PROT_WRITE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | extra, -1, 0);
}

int main(void) {
    map(0, 2, 0);          /* plain */
    map(2, 2, MAP_STACK);  /* a stack right after it */
    map(4, 2, MAP_STACK);  /* another stack right after that one */
    map(6, 2, 0);          /* plain again */
    map(10, 2, MAP_STACK); /* a lone stack */
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    unsigned long s, e, cur = 0;
    char perms[8];
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3 && strchr(line, '-') < strchr(line, ' ')) {
            cur = (s >= BASE && e <= BASE + 16 * P) ? s : 0;
            if (cur)
                printf("vma %#lx %#lx %.3s", s, e, perms);
        } else if (cur && strncmp(line, "VmFlags:", 8) == 0) {
            printf(" %s %s\n", strstr(line, " nh") ? "nh" : "-", strstr(line, " ac") ? "ac" : "-");
        }
    }
    return 0;
}
