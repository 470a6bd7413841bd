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
 *     delivered within that period at low rates and bpftrace's final drain still ends.
 * Other perf events, epoll sets and mmaps pass through untouched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <linux/perf_event.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>

#define MAX_FD 4096
enum { NONE, OPENED, POLLED };
static unsigned char state[MAX_FD];
static epoll_data_t poll_data[MAX_FD];
static volatile struct perf_event_mmap_page *ring[MAX_FD];
static int rings_epfd = -1;
static long drain_ms = 20, watermark = 1 << 20, last_drain_ms;

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
    int count = 0;
    for (int fd = 0; fd < MAX_FD && count < max; fd++) {
        if (state[fd] == POLLED && ring[fd]->data_head != ring[fd]->data_tail) {
            events[count].events = EPOLLIN;
            events[count].data = poll_data[fd];
            count++;
        }
    }
    last_drain_ms = now_ms();
    return count;
}

int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout) {
    static int (*real)(int, struct epoll_event *, int, int);
    if (!real) real = (int (*)(int, struct epoll_event *, int, int))dlsym(RTLD_NEXT, "epoll_wait");
    if (epfd != rings_epfd || max <= 0) return real(epfd, events, max, timeout);
    long until_drain = drain_ms - (now_ms() - last_drain_ms);
    if (until_drain <= 0) {
        int ready = non_empty(events, max);
        if (ready) return ready;
        until_drain = drain_ms;
    }
    int callers = timeout >= 0 && timeout < until_drain;
    int ready = real(epfd, events, max, callers ? timeout : (int)until_drain);
    if (ready == 0 && !callers) return non_empty(events, max);
    return ready;
}

__attribute__((constructor)) static void configure(void) {
    const char *drain = getenv("KUBEGUARD_PERF_DRAIN_MS"), *mark = getenv("KUBEGUARD_PERF_WATERMARK");
    if (drain && atol(drain) > 0) drain_ms = atol(drain);
    if (mark && atol(mark) > 0) watermark = atol(mark);
    last_drain_ms = now_ms();
}
