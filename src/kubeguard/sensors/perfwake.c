/* Batched perf-buffer wake-ups for bpftrace 0.17 (LD_PRELOAD into the sensor's bpftrace only).
 *
 * bpftrace opens its printf ring buffers (PERF_COUNT_SW_BPF_OUTPUT) through libbcc with
 * wakeup_events = 1: every printf in a probe queues an irq_work and wakes bpftrace. On our VMs that
 * self-interrupt costs ~10 us inside the probe, on the traced task's own time (measured with
 * kernel.bpf_stats_enabled: a printf("x\n") probe ran 10.2 us per call with it, 0.3 us without).
 * This shim
 *   - rewrites those perf_event_open calls to wake only at a byte watermark (KUBEGUARD_PERF_WATERMARK,
 *     a fraction of the ring, so a storm still wakes the reader long before the ring fills), and
 *   - makes bpftrace's epoll_wait report every non-empty ring at least every KUBEGUARD_PERF_DRAIN_MS
 *     (it reads the ring's data_head/data_tail from the page bpftrace mapped), so events are
 *     delivered within that period at low rates and bpftrace's final drain still ends, and
 *   - makes every return of that epoll_wait a full drain (all non-empty rings, also when one ring's
 *     watermark woke it), and with KUBEGUARD_PERF_MARKERS=1 writes a line
 *     {"type": "kg_drain", "data": T} to stdout once bpftrace has printed a drain's records: T is the
 *     CLOCK_MONOTONIC time the drain looked at the rings, so every record stamped before T is already out.
 *     bpftrace prints one ring after another, so a reader restores kernel-time order across CPUs by
 *     holding records until the marker past their time (Falco's libscap merges its rings the same way).
 * Other perf events, epoll sets and mmaps pass through untouched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <linux/perf_event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD 4096
enum { NONE, OPENED, POLLED };
static unsigned char state[MAX_FD];
static epoll_data_t poll_data[MAX_FD];
static volatile struct perf_event_mmap_page *ring[MAX_FD];
static int rings_epfd = -1;
static long drain_ms = 20, watermark = 1 << 20, last_drain_ms;
static int markers;               /* KUBEGUARD_PERF_MARKERS=1: write the drain markers */
static long long drain_ns;        /* when the last drain looked at the rings */
static int drain_rings;           /* how many rings it returned */
static int drain_reported = 1;    /* its marker is written (or not needed) */
static int reported_had_records;  /* the drain of the last marker returned rings */

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long now_ms(void) { return (long)(now_ns() / 1000000); }

/* Called only from epoll_wait, after bpftrace printed what the last drain returned: its marker.
 * A drain that returned rings is reported, and the empty one after it (its records stamped after the drain
 * began are out by then); idle drains after that are not. */
static void report_drain(void) {
    if (!markers || drain_reported) return;
    drain_reported = 1;
    if (!drain_rings && !reported_had_records) return;
    reported_had_records = drain_rings > 0;
    char line[64];
    int n = snprintf(line, sizeof line, "{\"type\": \"kg_drain\", \"data\": %lld}\n", drain_ns);
    if (n > 0 && write(1, line, (size_t)n) < 0) markers = 0;  /* stdout gone: bpftrace is ending */
}

long syscall(long number, ...) {
    static long (*real)(long, ...);
    if (!real) real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
    va_end(ap);
    int bpf_output = 0;
    if (number == SYS_perf_event_open && a[0]) {
        struct perf_event_attr *attr = (struct perf_event_attr *)a[0];
        if (attr->type == PERF_TYPE_SOFTWARE && attr->config == PERF_COUNT_SW_BPF_OUTPUT) {
            attr->watermark = 1;
            attr->wakeup_watermark = (unsigned)watermark;
            bpf_output = 1;
        }
    }
    long fd = real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (bpf_output && fd >= 0 && fd < MAX_FD) state[fd] = OPENED;
    return fd;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    static void *(*real)(void *, size_t, int, int, int, off_t);
    if (!real) real = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
    void *page = real(addr, len, prot, flags, fd, off);
    if (page != MAP_FAILED && fd >= 0 && fd < MAX_FD && state[fd] != NONE && off == 0) ring[fd] = page;
    return page;
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event) {
    static int (*real)(int, int, int, struct epoll_event *);
    if (!real) real = (int (*)(int, int, int, struct epoll_event *))dlsym(RTLD_NEXT, "epoll_ctl");
    if (op == EPOLL_CTL_ADD && event && fd >= 0 && fd < MAX_FD && state[fd] == OPENED && ring[fd]) {
        state[fd] = POLLED;
        poll_data[fd] = event->data;
        rings_epfd = epfd;
    }
    return real(epfd, op, fd, event);
}

/* The rings holding unread records, as epoll would report them. */
static int non_empty(struct epoll_event *events, int max) {
    report_drain();
    drain_ns = now_ns();  /* before the rings are looked at */
    int count = 0;
    for (int fd = 0; fd < MAX_FD && count < max; fd++) {
        if (state[fd] == POLLED && ring[fd]->data_head != ring[fd]->data_tail) {
            events[count].events = EPOLLIN;
            events[count].data = poll_data[fd];
            count++;
        }
    }
    last_drain_ms = now_ms();
    drain_rings = count;
    drain_reported = 0;
    return count;
}

static int is_ring(epoll_data_t data) {
    for (int fd = 0; fd < MAX_FD; fd++)
        if (state[fd] == POLLED && poll_data[fd].u64 == data.u64) return 1;
    return 0;
}

/* A wake-up (a ring at its watermark) becomes a drain of every non-empty ring; what else the set reported
 * is kept. */
static int full_drain(struct epoll_event *events, int max, int ready) {
    struct epoll_event others[16];
    int kept = 0;
    for (int i = 0; i < ready && kept < 16; i++)
        if (!is_ring(events[i].data)) others[kept++] = events[i];
    int count = non_empty(events, max - kept);
    for (int i = 0; i < kept; i++) events[count++] = others[i];
    return count;
}

int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout) {
    static int (*real)(int, struct epoll_event *, int, int);
    if (!real) real = (int (*)(int, struct epoll_event *, int, int))dlsym(RTLD_NEXT, "epoll_wait");
    if (epfd != rings_epfd || max <= 0) return real(epfd, events, max, timeout);
    report_drain();
    long until_drain = drain_ms - (now_ms() - last_drain_ms);
    if (until_drain <= 0) {
        int ready = non_empty(events, max);
        if (ready) return ready;
        until_drain = drain_ms;
    }
    int callers = timeout >= 0 && timeout < until_drain;
    int ready = real(epfd, events, max, callers ? timeout : (int)until_drain);
    if (ready > 0) return full_drain(events, max, ready);
    if (ready == 0 && !callers) return non_empty(events, max);
    return ready;
}

__attribute__((constructor)) static void configure(void) {
    const char *drain = getenv("KUBEGUARD_PERF_DRAIN_MS"), *mark = getenv("KUBEGUARD_PERF_WATERMARK");
    const char *report = getenv("KUBEGUARD_PERF_MARKERS");
    markers = report && report[0] == '1';
    if (drain && atol(drain) > 0) drain_ms = atol(drain);
    if (mark && atol(mark) > 0) watermark = atol(mark);
    last_drain_ms = now_ms();
}
