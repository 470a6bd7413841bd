/* Loader of execguard.bpf.o (kubeguard's compiled exec guard; see execguard.bpf.c).
 *
 *   execguard OBJECT ANSWERER_PID GEN KEYS_MAX
 *
 * Sizes the guard's maps to KEYS_MAX entries, sets the answerer's pid, loads and attaches the programs, prints
 * "READY GEN" once they are attached, then prints each ring-buffer record as the bpftrace program's line:
 * "K pid cgroup inode bad", "S pid cgroup GEN", "E pid", each in one write (shorter than PIPE_BUF: the pipe is
 * shared with ExecGuard and other guard programs). Waits in epoll (the ring buffer wakes it per record) and ends
 * when the answerer exits, on SIGTERM/SIGINT or when stdout is gone; its programs are detached when it ends
 * (their links are its fds). A start-up error is one "ERROR: ..." line on stderr and exit status 1.
 * Build: cc -O2 execguard.c -lbpf */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

enum { REC_KILL = 1, REC_HOLD = 2, REC_TRAP = 3, REC_QUIT = 4, REC_NEW = 5 };

struct rec {
    uint32_t type, pid;
    uint64_t cgroup, ino;
    int64_t bad;
};

static const char *gen = "0";
static int done;   /* the answerer exited, a stop signal, or stdout broke */
static int broken; /* stdout gone */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ERROR: execguard: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* one line, one write */
static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n <= 0 || (size_t)n >= sizeof(buf))
        return;
    while (write(1, buf, (size_t)n) < 0) {
        if (errno != EINTR) {
            done = broken = 1;
            return;
        }
    }
}

static int on_record(void *ctx, void *data, size_t size)
{
    (void)ctx;
    const struct rec *r = data;
    if (size < sizeof(*r))
        return 0;
    switch (r->type) {
    case REC_KILL:
        emit("K %u %llu %llu %lld\n", r->pid, (unsigned long long)r->cgroup, (unsigned long long)r->ino,
             (long long)r->bad);
        break;
    case REC_HOLD:
        emit("S %u %llu %s\n", r->pid, (unsigned long long)r->cgroup, gen);
        break;
    case REC_NEW:
        emit("N %u %llu %s\n", r->pid, (unsigned long long)r->cgroup, gen);
        break;
    case REC_TRAP:
        emit("E %u\n", r->pid);
        break;
    case REC_QUIT:
        done = 1;
        break;
    }
    return done ? -1 : 0;
}

/* the answerer's pid into the object's data (answerer_tgid), before load */
static void set_answerer(struct bpf_object *obj, uint32_t pid)
{
    struct bpf_map *data_map = NULL, *map;
    bpf_object__for_each_map(map, obj) {
        const char *name = bpf_map__name(map);
        size_t len = strlen(name);
        if (len >= 5 && strcmp(name + len - 5, ".data") == 0)
            data_map = map;
    }
    struct btf *btf = bpf_object__btf(obj);
    size_t size = 0;
    const void *initial = data_map ? bpf_map__initial_value(data_map, &size) : NULL;
    int sec_id = btf ? btf__find_by_name_kind(btf, ".data", BTF_KIND_DATASEC) : -1;
    if (!initial || sec_id < 0)
        fail("no .data in the object");
    char *data = malloc(size);
    if (!data)
        fail("out of memory");
    memcpy(data, initial, size);
    const struct btf_type *sec = btf__type_by_id(btf, (uint32_t)sec_id);
    const struct btf_var_secinfo *var = btf_var_secinfos(sec);
    for (int i = 0; i < btf_vlen(sec); i++, var++) {
        const char *name = btf__name_by_offset(btf, btf__type_by_id(btf, var->type)->name_off);
        if (name && strcmp(name, "answerer_tgid") == 0 && var->offset + sizeof(pid) <= size) {
            memcpy(data + var->offset, &pid, sizeof(pid));
            if (bpf_map__set_initial_value(data_map, data, size) != 0)
                fail("cannot set the answerer's pid");
            free(data);
            return;
        }
    }
    fail("answerer_tgid not found in the object");
}

/* whether process `pid` still runs (not gone, not a zombie) */
static int running(unsigned long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%lu/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

static int warnings(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        fail("usage: execguard OBJECT ANSWERER_PID GEN KEYS_MAX");
    char *end;
    unsigned long answerer = strtoul(argv[2], &end, 10);
    if (*end || !answerer)
        fail("bad answerer pid %s", argv[2]);
    unsigned long keys_max = strtoul(argv[4], &end, 10);
    if (*end || !keys_max || keys_max > (1ul << 30))
        fail("bad map size %s", argv[4]);
    gen = argv[3];
    libbpf_set_print(warnings);
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, NULL); /* taken from a signalfd in the loop */
    int sig_fd = signalfd(-1, &stop, SFD_CLOEXEC);
    if (sig_fd < 0)
        fail("signalfd: %s", strerror(errno));

    struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
    if (!obj)
        fail("cannot open %s: %s", argv[1], strerror(errno));
    struct bpf_map *map;
    bpf_object__for_each_map(map, obj) {
        if (strncmp(bpf_map__name(map), "AT_", 3) == 0 && bpf_map__set_max_entries(map, (uint32_t)keys_max) != 0)
            fail("map %s: size %lu refused", bpf_map__name(map), keys_max);
    }
    set_answerer(obj, (uint32_t)answerer);
    int err = bpf_object__load(obj);
    if (err)
        fail("loading %s failed: %s", argv[1], strerror(-err));
    struct bpf_program *prog;
    bpf_object__for_each_program(prog, obj) {
        if (!bpf_program__attach(prog))
            fail("attaching %s failed: %s", bpf_program__name(prog), strerror(errno));
    }
    struct ring_buffer *rb = ring_buffer__new(bpf_object__find_map_fd_by_name(obj, "events"), on_record, NULL,
                                              NULL);
    if (!rb)
        fail("ring buffer: %s", strerror(errno));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ring_buffer__epoll_fd(rb), &ev) != 0)
        fail("epoll: %s", strerror(errno));
    ev.data.u32 = 1;
    epoll_ctl(ep, EPOLL_CTL_ADD, sig_fd, &ev);
    ev.events = 0; /* EPOLLERR: the pipe's reader is gone (fails on a regular file: then a write tells) */
    ev.data.u32 = 2;
    epoll_ctl(ep, EPOLL_CTL_ADD, 1, &ev);
    if (!running(answerer)) /* gone before the exit program was attached */
        fail("the script answerer (pid %lu) is not running", answerer);

    emit("READY %s\n", gen);
    while (!done) {
        struct epoll_event events[4];
        int n = epoll_wait(ep, events, 4, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.u32 == 0)
                ring_buffer__consume(rb);
            else if (events[i].data.u32 == 1)
                done = 1; /* SIGTERM/SIGINT */
            else
                done = broken = 1;
        }
    }
    if (!broken)
        ring_buffer__consume(rb); /* the lines of what happened before the stop */
    ring_buffer__free(rb);
    bpf_object__close(obj); /* detaches the programs (as exiting would) */
    return 0;
}
