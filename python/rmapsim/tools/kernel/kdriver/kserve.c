/*
 * kserve: the real-kernel side of `rmapsim validate-kernel --fuzz`.
 *
 * Every simulated process is one real process running this program, commanded by the
 * controller (rmapsim.tools.kernel.live) over a unix SOCK_SEQPACKET socket on fd 3. Each
 * command is one fixed-size request (struct req); the process performs exactly one
 * system call (or, for touch, one access per page) and answers with one struct rep: the
 * call's result and errno. Nothing else runs between commands, so the kernel sees the
 * operations in the controller's order.
 *
 *   kserve dispatch    the dispatcher (started by the controller, fd 3 its socket):
 *                      it only spawns (fork + exec of kserve serve), so every spawned
 *                      process has a fresh mm; it disables address-space randomisation
 *                      and THP for its descendants first, so layouts are the same every run
 *   kserve serve       a simulated process (fd 3 its socket); first sends a ready reply
 *
 * Processes are created with a new socket passed in the command (SCM_RIGHTS): spawn (by
 * the dispatcher) and fork (by the process forked) put it on fd 3 of the new process; exec
 * re-executes this program with fd 3 kept. The socket is closed by the exit of the last
 * process holding it, after exit_mm, so end of file on the controller's side means the
 * process's address space is gone.
 *
 * The program never allocates memory after start-up (no stdio, no malloc): its own
 * mappings do not change while it serves, and the controller mirrors them into the
 * simulator once per image. Accesses that fault (touch of an unmapped or forbidden page,
 * SIGSEGV; a file page past the end, SIGBUS) are caught and answered with EFAULT/EIO,
 * after the pages before the failing one were accessed, as a real program's loop would.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif
#ifndef PR_SET_THP_DISABLE
#define PR_SET_THP_DISABLE 41
#endif

#define CHAN 3
#define PG 4096UL

/* The request and reply layouts; python/rmapsim/tools/kernel/live.py packs the same. */
struct req {
    uint64_t op, a, b, c, d, e, f, g;
};
struct rep {
    int64_t ret;
    int64_t err;
};

enum {
    OP_MMAP = 1,      /* a addr, b len, c prot, d MAP_ flags, e file id (0: anonymous), f offset */
    OP_MUNMAP,        /* a addr, b len */
    OP_MPROTECT,      /* a addr, b len, c prot */
    OP_MADVISE,       /* a addr, b len, c advice */
    OP_MREMAP,        /* a addr, b old len, c new len, d MREMAP_ flags, e new addr */
    OP_TOUCH,         /* a addr, b len, c write: one access per page, in address order */
    OP_BRK,           /* a new break (0: query) -> the break */
    OP_MLOCK,         /* a addr, b len */
    OP_MLOCK2,        /* a addr, b len, c flags */
    OP_MUNLOCK,       /* a addr, b len */
    OP_MLOCKALL,      /* a flags */
    OP_MUNLOCKALL,    /* - */
    OP_MEMORY_MERGE,  /* a 1 on, 0 off: prctl(PR_SET_MEMORY_MERGE) */
    OP_FORK,          /* with the child's socket -> the child's pid; the child sends ready */
    OP_EXEC,          /* re-exec this program; the new image sends ready */
    OP_EXIT,          /* _exit(0): no reply, the socket reaches end of file */
    OP_SPAWN,         /* dispatcher only, with the new process's socket -> its pid */
    OP_PING,          /* -> the pid */
};

static sigjmp_buf fault_jmp;
static volatile sig_atomic_t fault_armed, fault_sig;
static char self_exe[4096];

static void on_fault(int sig) {
    if (!fault_armed)
        _exit(128 + sig);
    fault_sig = sig;
    siglongjmp(fault_jmp, 1);
}

static void send_rep(int64_t ret, int64_t err) {
    struct rep r = {ret, err};
    if (send(CHAN, &r, sizeof r, MSG_NOSIGNAL) != (ssize_t)sizeof r)
        _exit(3);
}

/* One request, and the descriptor it carries (-1 if none). End of file: exit quietly. */
static int recv_req(struct req *q) {
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {q, sizeof *q};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf;
    m.msg_controllen = sizeof cbuf;
    ssize_t n;
    do
        n = recvmsg(CHAN, &m, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        _exit(0);
    if (n != (ssize_t)sizeof *q)
        _exit(4);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    int fd = -1;
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

/* Put `fd` on CHAN (without close-on-exec) in a new process. */
static void take_channel(int fd) {
    if (dup2(fd, CHAN) != CHAN)
        _exit(5);
    close(fd);
}

static void exec_self(void) {
    char *argv[] = {"kserve", "serve", 0};
    execv(self_exe, argv);
}

static int64_t touch(char *addr, uint64_t len, int write, int64_t *err) {
    volatile char *p = (volatile char *)addr;
    uint64_t i = 0;
    if (sigsetjmp(fault_jmp, 1)) {
        fault_armed = 0;
        *err = fault_sig == SIGBUS ? EIO : EFAULT;
        return -1;
    }
    fault_armed = 1;
    for (; i < len; i += PG) {
        if (write)
            p[i] = (char)1;
        else
            (void)p[i];
    }
    fault_armed = 0;
    return 0;
}

/*
 * The file mapped by OP_MMAP: "f<id>" in the working directory (the controller's), opened
 * once per process on fd FILE_FD + id and kept (across fork and exec too), so every
 * mapping of one identity shares one struct file, as the simulator's file identity does
 * (the kernel merges file VMAs only of the same struct file: is_mergeable_vma).
 */
#define FILE_FD 10
#define MAX_FILES 16
static int open_file(uint64_t id) {
    if (id >= MAX_FILES) {
        errno = EBADF;
        return -1;
    }
    int want = FILE_FD + (int)id;
    if (fcntl(want, F_GETFD) >= 0)
        return want;
    char name[4] = {'f', (char)('0' + id / 10), (char)('0' + id % 10), 0};
    if (id < 10) {
        name[1] = (char)('0' + id);
        name[2] = 0;
    }
    int fd = open(name, O_RDWR);
    if (fd < 0)
        return -1;
    if (fd != want) {
        if (dup2(fd, want) != want) {
            close(fd);
            return -1;
        }
        close(fd);
    }
    return want;
}

static int64_t do_mmap(const struct req *q, int64_t *err) {
    int fd = -1;
    uint64_t flags = q->d;
    if (q->e) {
        fd = open_file(q->e);
        if (fd < 0) {
            *err = errno;
            return -1;
        }
    } else {
        flags |= MAP_ANONYMOUS;
    }
    void *p = mmap((void *)q->a, q->b, (int)q->c, (int)flags, fd, (off_t)q->f);
    if (p == MAP_FAILED) {
        *err = errno;
        return -1;
    }
    return (int64_t)(uintptr_t)p;
}

/* One command; returns its result with *err = errno (0 on success). */
static int64_t run(const struct req *q, int fd, int64_t *err) {
    long r = 0;
    switch (q->op) {
    case OP_MMAP:
        return do_mmap(q, err);
    case OP_MUNMAP:
        r = munmap((void *)q->a, q->b);
        break;
    case OP_MPROTECT:
        r = mprotect((void *)q->a, q->b, (int)q->c);
        break;
    case OP_MADVISE:
        r = madvise((void *)q->a, q->b, (int)q->c);
        break;
    case OP_MREMAP: {
        void *p = mremap((void *)q->a, q->b, q->c, (int)q->d, (void *)q->e);
        if (p == MAP_FAILED) {
            *err = errno;
            return -1;
        }
        return (int64_t)(uintptr_t)p;
    }
    case OP_TOUCH:
        return touch((char *)q->a, q->b, (int)q->c, err);
    case OP_BRK:
        return (int64_t)syscall(SYS_brk, q->a); /* the raw call: the break, no errno */
    case OP_MLOCK:
        r = mlock((void *)q->a, q->b);
        break;
    case OP_MLOCK2:
        r = syscall(SYS_mlock2, q->a, q->b, q->c);
        break;
    case OP_MUNLOCK:
        r = munlock((void *)q->a, q->b);
        break;
    case OP_MLOCKALL:
        r = mlockall((int)q->a);
        break;
    case OP_MUNLOCKALL:
        r = munlockall();
        break;
    case OP_MEMORY_MERGE:
        r = prctl(PR_SET_MEMORY_MERGE, q->a, 0, 0, 0);
        break;
    case OP_FORK: {
        if (fd < 0) {
            *err = EBADF;
            return -1;
        }
        pid_t c = fork();
        if (c == 0) {
            take_channel(fd);
            send_rep(getpid(), 0);
            return -2; /* the child: back to the loop, no second reply */
        }
        close(fd);
        if (c < 0) {
            *err = errno;
            return -1;
        }
        return c;
    }
    case OP_EXEC:
        exec_self();
        *err = errno;
        return -1;
    case OP_EXIT:
        _exit(0);
    case OP_PING:
        return getpid();
    default:
        *err = ENOSYS;
        return -1;
    }
    if (r < 0) {
        *err = errno;
        return -1;
    }
    return r;
}

/* Fault in the stack below the caller's frame, so serving (calls, signal frames) only
 * uses pages that exist. */
__attribute__((noinline)) static void warm_stack(void) {
    volatile char buf[64 * 1024];
    for (size_t i = 0; i < sizeof buf; i += PG)
        buf[i] = 0;
}

/* A simulated process: answer commands until exit. */
_Noreturn static void serve(void) {
    warm_stack();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fault;
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0);
    sigaction(SIGBUS, &sa, 0);
    signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
    send_rep(getpid(), 0);    /* ready */
    for (;;) {
        struct req q;
        int fd = recv_req(&q);
        int64_t err = 0;
        int64_t ret = run(&q, fd, &err);
        if (ret == -2 && q.op == OP_FORK)
            continue;
        if (fd >= 0 && q.op != OP_FORK)
            close(fd);
        send_rep(ret, err);
    }
}

/* The dispatcher: spawn fresh processes on request. */
_Noreturn static void dispatch(void) {
    if (personality(ADDR_NO_RANDOMIZE) < 0 || prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
        send_rep(-1, errno);
    signal(SIGCHLD, SIG_IGN);
    send_rep(getpid(), 0);
    for (;;) {
        struct req q;
        int fd = recv_req(&q);
        int64_t ret, err = 0;
        if (q.op == OP_SPAWN && fd >= 0) {
            pid_t c = fork();
            if (c == 0) {
                take_channel(fd);
                exec_self();
                _exit(6);
            }
            close(fd);
            ret = c < 0 ? -1 : c;
            err = c < 0 ? errno : 0;
        } else if (q.op == OP_PING) {
            ret = getpid();
        } else {
            if (fd >= 0)
                close(fd);
            ret = -1;
            err = ENOSYS;
        }
        send_rep(ret, err);
    }
}

int main(int argc, char **argv) {
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n <= 0)
        return 2;
    self_exe[n] = 0;
    if (argc == 2 && !strcmp(argv[1], "serve"))
        serve();
    if (argc == 2 && !strcmp(argv[1], "dispatch"))
        dispatch();
    static const char usage[] = "usage: kserve dispatch|serve (fd 3: the controller's socket)\n";
    if (write(2, usage, sizeof usage - 1) < 0)
        return 2;
    return 2;
}
