/* Loader and reader of execprobe.bpf.o (kubeguard's compiled exec probe, which also reports connect and accept;
 * see execprobe.bpf.c).
 *
 *   execprobe [-s] OBJECT [RING_BYTES]
 *
 * Loads and attaches the object's programs, prints {"type": "kg_exec_ready"} once they are attached, then
 * every DRAIN_MS drains the ring buffer and prints each record in bpftrace's -f json form
 * ({"type": "printf", "data": "E\x1f..."}): a successful exec as one E line (what kubeguard.bt's exec,
 * execfacts and execenv sections print as A, V, XE, XF, X and W lines; the environment as XE lines before it
 * when the line would pass PIPE_BUF), a failed exec as those sections' A, V, X and W lines, a process exit as
 * procexit's Q line, a connect as the connect section's C4, C6 or CU line, an accept as the accept section's AC4
 * or AC6 line, a packet socket as the socket section's SK line; then a drain marker {"type": "kg_drain_exec", "data": T}: every record stamped before T
 * (CLOCK_MONOTONIC) is out. With -s (`execprobe -s OBJECT ...`) successful execs are printed as the sections'
 * lines too (what the decoder reads from bpftrace; tests compare the two forms).
 * Records the kernel dropped (full ring) are printed as {"type": "lost_events", "data": {"events": N}}.
 * Output goes to stdout in writes of whole lines of at most PIPE_BUF bytes, so it can share a pipe with
 * bpftrace's. Ends on SIGTERM/SIGINT or when stdout is gone. Build: cc -O2 execprobe.c -lbpf */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_MS 20
#define STR_LEN 64
#define FILENAME_LEN 256
#define ARGS_LEN 1024
#define ARGV_MAX 15
#define CWD_MAX 10
#define ENV_LEN 4096
#define ENV_CHUNK 64
#define E_ARGV_MAX 512 /* arguments on an E line at most (ARGS_LEN bytes hold at most 512) */

#define UNIX_PATH_LEN 108

enum { REC_EXEC = 1, REC_FAIL = 3, REC_EXIT = 4, REC_CONNECT = 5, REC_ACCEPT = 6, REC_SOCKET = 7,
       REC_EXEC_ENV = 8 };

struct header {
    uint32_t type;
    uint32_t tgid, tid, ppid, uid, gid, pidns, vpid;
    uint64_t ktime, cgroup;
    char comm[16];
};

struct exec_rec {
    struct header h;
    uint32_t loginuid, sid, tty_major, tty_minor, facts, args_len, cwd_n, pad;
    uint64_t cap_permitted, cap_effective, cap_inheritable;
    char filename[FILENAME_LEN];
    char args[ARGS_LEN];
    char cwd[CWD_MAX][STR_LEN];
    uint8_t cwd_root[CWD_MAX];
    uint8_t cwd_pad[6];
};

struct env_rec {
    struct header h;
    uint64_t length;
    uint32_t copied, pad;
    char env[ENV_LEN];
};

/* a successful exec as the probe sends it (execprobe.bpf.c's struct exec_packed): the fixed fields, then the file
 * name, argv, the cwd's names and (REC_EXEC_ENV) the environment back to back in `data`, as long as they are */
struct exec_packed {
    struct header h;
    uint32_t loginuid, sid, tty_major, tty_minor, facts, args_len, filename_len, env_copied;
    uint64_t cap_permitted, cap_effective, cap_inheritable, env_length;
    uint8_t cwd_root[CWD_MAX], cwd_len[CWD_MAX];
    uint32_t pad;
    char data[];
};

struct fail_rec {
    struct header h;
    int64_t ret;
    uint32_t loginuid, sid, tty_major, tty_minor, argc, pad;
    char filename[STR_LEN];
    char argv[ARGV_MAX][STR_LEN];
    char cwd[CWD_MAX][STR_LEN];
    uint8_t cwd_root[CWD_MAX];
    uint8_t cwd_pad[6];
};

struct exit_rec {
    struct header h;
    uint32_t status, pad;
};

struct conn_rec {
    struct header h;
    int32_t fd, ret;
    uint32_t family, proto, rport, lport;
    uint32_t accept4, pad;
    uint8_t raddr[16], laddr[16];
    char path[128];
};

struct socket_rec {
    struct header h;
    int32_t ret, domain, type, protocol;
};

static volatile sig_atomic_t stopping;
static int out_broken;

/* ---- output: whole lines, flushed in writes of at most PIPE_BUF bytes ---- */
static char out[PIPE_BUF];
static size_t out_len;
static char line[PIPE_BUF];
static size_t line_len;

static void flush_out(void)
{
    size_t done = 0;
    while (done < out_len && !out_broken) {
        ssize_t n = write(1, out + done, out_len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            out_broken = 1;
            break;
        }
        done += (size_t)n;
    }
    out_len = 0;
}

static void put(const char *s, size_t n)
{
    if (line_len + n > sizeof(line) - 8)
        n = sizeof(line) - 8 > line_len ? sizeof(line) - 8 - line_len : 0;
    memcpy(line + line_len, s, n);
    line_len += n;
}

static void puts_(const char *s) { put(s, strlen(s)); }

static void putf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void putf(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* a string field, JSON-escaped, cut at its NUL or `max` bytes (bpftrace's %s of a 64-byte str()); the field
 * separator (0x1f) in the string as U+FFFD, so that it cannot split the field */
static void put_str(const char *s, size_t max)
{
    char esc[8];
    for (size_t i = 0; i < max && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0x1f) {
            puts_("\\ufffd");
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            put(esc, (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c));
        } else {
            put((const char *)&c, 1);
        }
    }
}

/* bytes as bpftrace's %r renders them (\xNN for all but printable ASCII), JSON-escaped */
static void put_raw(const unsigned char *b, size_t n)
{
    char esc[8];
    for (size_t i = 0; i < n; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\' && b[i] != '"')
            put((const char *)&b[i], 1);
        else
            put(esc, (size_t)snprintf(esc, sizeof(esc), "\\\\x%02x", b[i]));
    }
}

static void begin(const char *tag)
{
    line_len = 0;
    puts_("{\"type\": \"printf\", \"data\": \"");
    puts_(tag);
}

static void sep(void) { puts_("\\u001f"); }

static void end_line(void)
{
    puts_("\\n\"}\n");
    if (out_len + line_len > sizeof(out))
        flush_out();
    memcpy(out + out_len, line, line_len);
    out_len += line_len;
    line_len = 0;
}

static void header_fields(const struct header *h, uint64_t ns)
{
    putf("\\u001f%llu\\u001f%u\\u001f%u\\u001f%u\\u001f%u\\u001f%u\\u001f%llu\\u001f%u\\u001f%u",
         (unsigned long long)ns, h->tgid, h->tid, h->ppid, h->uid, h->gid, (unsigned long long)h->cgroup,
         h->pidns, h->vpid);
    sep();
    put_str(h->comm, sizeof(h->comm));
}

/* A and V lines: the file name and argv (`args`: `argc` strings of at most STR_LEN bytes each) */
static void entry_lines(const struct header *h, uint64_t entry_ns, const char *filename, size_t filename_max,
                        char args[][STR_LEN], int argc)
{
    begin("A");
    header_fields(h, entry_ns);
    sep();
    put_str(filename, filename_max < STR_LEN - 1 ? filename_max : STR_LEN - 1);
    for (int i = 0; i < 3; i++) {
        sep();
        if (i < argc)
            put_str(args[i], STR_LEN - 1);
    }
    putf("\\u001f%d", argc > 3);
    end_line();
    for (int first = 3; first < argc && first < ARGV_MAX; first += 4) {
        begin("V");
        putf("\\u001f%u\\u001f%d", h->tid, first);
        for (int i = first; i < first + 4; i++) {
            sep();
            if (i < argc)
                put_str(args[i], STR_LEN - 1);
        }
        putf("\\u001f%d", argc > first + 4);
        end_line();
    }
}

static void exit_line(const struct header *h, uint64_t ns, long long ret, uint32_t loginuid, uint32_t sid,
                      uint32_t major, uint32_t minor, uint64_t entry_ns)
{
    begin("X");
    header_fields(h, ns);
    putf("\\u001f%lld\\u001f%u\\u001f%u\\u001f%u\\u001f%u\\u001f\\u001f%llu", ret, loginuid, sid, major, minor,
         (unsigned long long)entry_ns);
    end_line();
}

/* W lines: three components each from the leaf upward (name|is_root), then whether the walk reached the root
 * after them; the next line only when it did not */
static void cwd_lines(uint32_t tid, const char cwd[CWD_MAX][STR_LEN], const uint8_t *root)
{
    for (int first = 0; first + 3 < CWD_MAX; first += 3) {
        begin("W");
        putf("\\u001f%u\\u001f%d", tid, first);
        for (int k = first; k < first + 3; k++) {
            sep();
            put_str(cwd[k], STR_LEN - 1);
            putf("|%d", root[k]);
        }
        putf("\\u001f%d", root[first + 3]);
        end_line();
        if (root[first + 3])
            break;
    }
}

static uint32_t env_tid;
static struct env_rec env_pending;
static int env_have;

static void env_lines(const struct env_rec *e)
{
    uint64_t length = e->length;
    uint64_t size = length < ENV_LEN ? length : ENV_LEN;
    for (uint64_t offset = 0; offset == 0 || offset < size; offset += 4 * ENV_CHUNK) {
        begin("XE");
        putf("\\u001f%u\\u001f%llu\\u001f%llu", e->h.tid, (unsigned long long)offset, (unsigned long long)length);
        for (int j = 0; j < 4; j++) {
            /* as kubeguard.bt reads it: the 64 bytes from the chunk's offset, or the 64 ending at the
             * environment's end when that would run past it (bytes outside what was copied are zero) */
            long long nominal = (long long)offset + ENV_CHUNK * j;
            long long start = nominal + ENV_CHUNK > (long long)length ? (long long)length - ENV_CHUNK : nominal;
            unsigned char chunk[ENV_CHUNK];
            for (int k = 0; k < ENV_CHUNK; k++) {
                long long pos = start + k;
                chunk[k] = pos >= 0 && pos < (long long)e->copied ? (unsigned char)e->env[pos] : 0;
            }
            sep();
            put_raw(chunk, ENV_CHUNK);
        }
        end_line();
    }
}

static int split_lines; /* -s: successful execs as A, V, XE, XF, X and W lines */

/* Falco's proc.env of the pending environment record (entries joined by single spaces, empty ones left out; the
 * first ENV_LEN bytes, as the XE lines carry them), JSON-escaped into env_text; -1 when longer than `room` */
static char env_text[PIPE_BUF];
static size_t env_text_len;

static int env_field(const struct env_rec *e, size_t room)
{
    uint64_t size = e->length < ENV_LEN ? e->length : ENV_LEN;
    if (size > e->copied)
        size = e->copied; /* bytes past the copy read as NULs on the XE lines: separators */
    size_t n = 0;
    int space = 0;
    char esc[8];
    for (uint64_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char)e->env[i];
        size_t k;
        if (c == 0) {
            space = n > 0;
            continue;
        }
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            k = 2;
        } else if (c < 0x20 || c == 0x7f) {
            k = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c); /* 0x1f too: the decoder joins the rest */
        } else {
            esc[0] = (char)c;
            k = 1;
        }
        if (n + space + k > room)
            return -1;
        if (space)
            env_text[n++] = ' ';
        space = 0;
        memcpy(env_text + n, esc, k);
        n += k;
    }
    env_text_len = n;
    return 0;
}

/* the cwd the W lines' components make, as the decoder joins them: from the root down, "..." first when the walk
 * did not reach the root, a trailing slash */
static void put_cwd(const char cwd[CWD_MAX][STR_LEN], const uint8_t *root)
{
    int stop = 0;
    while (stop < CWD_MAX && !root[stop])
        stop++;
    if (stop == CWD_MAX)
        puts_("...");
    for (int k = (stop < CWD_MAX - 1 ? stop : CWD_MAX - 1) - 1; k >= 0; k--) {
        if (!cwd[k][0] || (cwd[k][0] == '/' && !cwd[k][1]))
            continue;
        puts_("/");
        put_str(cwd[k], STR_LEN - 1);
    }
    puts_("/");
}

static char saved_line[PIPE_BUF];

/* E: header, ret, loginuid, sid, tty major and minor, facts, the three capability sets, file name, cwd, whether
 * argv was cut, argc, argv, the environment (as proc.env) and its state ("" none read, "0" whole, "1" cut at
 * ENV_LEN, "x" on XE lines before this line; last, so that the line's end cannot be taken for the environment's);
 * 0, or -1 when the line would not fit (the caller prints the split lines). Unlike the split lines (15 arguments
 * of 63 bytes, the first empty one ending argv, a 63-byte file name), it carries every argument in the record's
 * ARGS_LEN bytes whole, empty ones too, up to E_ARGV_MAX of them, and the file name up to FILENAME_LEN - 1 bytes */
static int exec_line(const struct exec_rec *r)
{
    begin("E");
    header_fields(&r->h, r->h.ktime);
    putf("\\u001f0\\u001f%u\\u001f%u\\u001f%u\\u001f%u\\u001f%u\\u001f%llu\\u001f%llu\\u001f%llu", r->loginuid,
         r->sid, r->tty_major, r->tty_minor, r->facts, (unsigned long long)r->cap_permitted,
         (unsigned long long)r->cap_effective, (unsigned long long)r->cap_inheritable);
    sep();
    put_str(r->filename, FILENAME_LEN - 1);
    sep();
    put_cwd(r->cwd, r->cwd_root);
    size_t len = r->args_len < ARGS_LEN ? r->args_len : ARGS_LEN;
    int argc = 0;
    size_t i = 0;
    while (i < len && argc < E_ARGV_MAX) { /* each argument ends at its NUL (the last one maybe at the copy's end) */
        i += strnlen(r->args + i, len - i) + 1;
        argc++;
    }
    /* cut: arguments past E_ARGV_MAX, or the copy full and its last byte no NUL (the area went on) */
    int cut = i < len || (len == ARGS_LEN && r->args[ARGS_LEN - 1] != 0);
    putf("\\u001f%d\\u001f%d", cut, argc);
    i = 0;
    for (int k = 0; k < argc; k++) {
        size_t n = strnlen(r->args + i, len - i);
        sep();
        put_str(r->args + i, n);
        i += n + 1;
    }
    const size_t tail = 32; /* two separators, the state, the line's end */
    if (line_len + tail > sizeof(line) - 8)
        return -1; /* put() may have cut it */
    int have_env = env_have && env_tid == r->h.tid;
    env_have = 0;
    if (!have_env) {
        puts_("\\u001f\\u001f");
    } else if (env_field(&env_pending, sizeof(line) - 8 - tail - line_len) == 0) {
        sep();
        put(env_text, env_text_len);
        puts_(env_pending.length > ENV_LEN ? "\\u001f1" : "\\u001f0");
    } else {
        size_t len = line_len;
        memcpy(saved_line, line, len);
        env_lines(&env_pending);
        memcpy(line, saved_line, len);
        line_len = len;
        puts_("\\u001f\\u001fx");
    }
    end_line();
    return 0;
}

static int on_exec(const struct exec_rec *r)
{
    if (!split_lines && exec_line(r) == 0)
        return 0;
    char args[ARGV_MAX][STR_LEN];
    int argc = 0;
    size_t i = 0;
    while (i < r->args_len && argc < ARGV_MAX) {
        size_t n = strnlen(r->args + i, r->args_len - i);
        if (n == 0)
            break; /* an empty argument ends argv, as kubeguard.bt's str() of it does */
        size_t keep = n < STR_LEN - 1 ? n : STR_LEN - 1;
        memcpy(args[argc], r->args + i, keep);
        args[argc][keep] = 0;
        argc++;
        i += n + 1;
    }
    uint64_t entry_ns = r->h.ktime - 1; /* the A line pairs with its X line by this stamp */
    entry_lines(&r->h, entry_ns, r->filename, FILENAME_LEN, args, argc);
    if (env_have && env_tid == r->h.tid)
        env_lines(&env_pending);
    env_have = 0;
    if (r->facts) {
        begin("XF");
        putf("\\u001f%u\\u001f%u\\u001f%llu\\u001f%llu\\u001f%llu", r->h.tid, r->facts,
             (unsigned long long)r->cap_permitted, (unsigned long long)r->cap_effective,
             (unsigned long long)r->cap_inheritable);
        end_line();
    }
    exit_line(&r->h, r->h.ktime, 0, r->loginuid, r->sid, r->tty_major, r->tty_minor, entry_ns);
    cwd_lines(r->h.tid, r->cwd, r->cwd_root);
    return 0;
}

static int on_fail(const struct fail_rec *r)
{
    char args[ARGV_MAX][STR_LEN];
    int argc = r->argc < ARGV_MAX ? (int)r->argc : ARGV_MAX;
    for (int i = 0; i < argc; i++) {
        memcpy(args[i], r->argv[i], STR_LEN);
        args[i][STR_LEN - 1] = 0;
        if (!args[i][0]) {
            argc = i;
            break;
        }
    }
    uint64_t entry_ns = r->h.ktime - 1;
    entry_lines(&r->h, entry_ns, r->filename, STR_LEN, args, argc);
    exit_line(&r->h, r->h.ktime, (long long)r->ret, r->loginuid, r->sid, r->tty_major, r->tty_minor, entry_ns);
    cwd_lines(r->h.tid, r->cwd, r->cwd_root);
    return 0;
}

/* an address as bpftrace's ntop() prints it */
static void put_addr(uint32_t family, const uint8_t *addr)
{
    char text[INET6_ADDRSTRLEN] = "";
    inet_ntop(family == 2 ? AF_INET : AF_INET6, addr, text, sizeof(text));
    sep();
    puts_(text);
}

/* C4, C6 and CU lines (kubeguard.bt's connect section); AC4 and AC6 lines (its accept section) */
static void on_conn(const struct conn_rec *r)
{
    int accept = r->h.type == REC_ACCEPT;
    if (r->family == 1) {
        begin("CU");
        header_fields(&r->h, r->h.ktime);
        putf("\\u001f%d\\u001f%d", r->fd, r->ret);
        sep();
        put_str(r->path, UNIX_PATH_LEN);
        end_line();
        return;
    }
    begin(accept ? (r->family == 2 ? "AC4" : "AC6") : (r->family == 2 ? "C4" : "C6"));
    header_fields(&r->h, r->h.ktime);
    if (accept)
        putf("\\u001ftracepoint:syscalls:sys_exit_accept%s\\u001f%d\\u001f%u", r->accept4 ? "4" : "", r->ret,
             r->proto);
    else
        putf("\\u001f%d\\u001f%d\\u001f%u", r->fd, r->ret, r->proto);
    put_addr(r->family, r->raddr);
    putf("\\u001f%u", r->rport);
    put_addr(r->family, r->laddr);
    putf("\\u001f%u", r->lport);
    end_line();
}

/* A packed exec record into `unpacked` (the fixed-slot form the printers read) and, with an environment, into
 * env_pending; -1 when its lengths do not fit its size or their bounds (the record is skipped) */
static struct exec_rec unpacked;

static int unpack_exec(const void *data, size_t size)
{
    const struct exec_packed *p = data;
    if (size < sizeof(*p))
        return -1;
    size_t avail = size - sizeof(*p), off = 0;
    struct exec_rec *r = &unpacked;
    memset(r, 0, sizeof(*r));
    r->h = p->h;
    r->loginuid = p->loginuid;
    r->sid = p->sid;
    r->tty_major = p->tty_major;
    r->tty_minor = p->tty_minor;
    r->facts = p->facts;
    r->cap_permitted = p->cap_permitted;
    r->cap_effective = p->cap_effective;
    r->cap_inheritable = p->cap_inheritable;
    r->cwd_n = CWD_MAX;
    if (p->filename_len > FILENAME_LEN || p->args_len > ARGS_LEN || p->filename_len + p->args_len > avail)
        return -1;
    memcpy(r->filename, p->data, p->filename_len);
    r->filename[FILENAME_LEN - 1] = 0;
    off = p->filename_len;
    memcpy(r->args, p->data + off, p->args_len);
    r->args_len = p->args_len;
    off += p->args_len;
    for (int i = 0; i < CWD_MAX; i++) {
        size_t n = p->cwd_len[i];
        if (n > STR_LEN || off + n > avail)
            return -1;
        memcpy(r->cwd[i], p->data + off, n);
        r->cwd[i][STR_LEN - 1] = 0;
        r->cwd_root[i] = p->cwd_root[i];
        off += n;
    }
    if (p->h.type == REC_EXEC_ENV) {
        if (p->env_copied > ENV_LEN || off + p->env_copied > avail)
            return -1;
        env_pending.h = p->h;
        env_pending.length = p->env_length;
        env_pending.copied = p->env_copied;
        memcpy(env_pending.env, p->data + off, p->env_copied); /* bytes past the copy are read as NULs */
        env_tid = p->h.tid;
        env_have = 1;
    }
    return 0;
}

static int on_record(void *ctx, void *data, size_t size)
{
    (void)ctx;
    const struct header *h = data;
    if (size < sizeof(*h))
        return 0;
    switch (h->type) {
    case REC_EXEC:
    case REC_EXEC_ENV:
        if (unpack_exec(data, size) == 0)
            on_exec(&unpacked);
        break;
    case REC_FAIL:
        if (size >= sizeof(struct fail_rec))
            on_fail(data);
        break;
    case REC_EXIT:
        if (size >= sizeof(struct exit_rec)) {
            const struct exit_rec *r = data;
            begin("Q");
            header_fields(h, h->ktime);
            putf("\\u001f%u", r->status);
            end_line();
        }
        break;
    case REC_SOCKET:
        if (size >= sizeof(struct socket_rec)) {
            const struct socket_rec *r = data;
            begin("SK");
            header_fields(h, h->ktime);
            putf("\\u001f%d\\u001f%d\\u001f%d\\u001f%d", r->ret, r->domain, r->type, r->protocol);
            end_line();
        }
        break;
    case REC_CONNECT:
    case REC_ACCEPT:
        if (size >= sizeof(struct conn_rec))
            on_conn(data);
        break;
    }
    return 0;
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    if (level == LIBBPF_WARN)
        return vfprintf(stderr, fmt, ap);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "-s") == 0) {
        split_lines = 1;
        argv++;
        argc--;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: execprobe [-s] OBJECT [RING_BYTES]\n");
        return 2;
    }
    libbpf_set_print(quiet);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
    if (!obj) {
        fprintf(stderr, "execprobe: cannot open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    if (argc > 2) {
        struct bpf_map *ring = bpf_object__find_map_by_name(obj, "events");
        if (ring && bpf_map__set_max_entries(ring, (uint32_t)strtoul(argv[2], NULL, 10)) != 0) {
            fprintf(stderr, "execprobe: ring size %s refused\n", argv[2]);
            return 1;
        }
    }
    int err = bpf_object__load(obj);
    if (err) {
        fprintf(stderr, "execprobe: loading %s failed: %s\n", argv[1], strerror(-err));
        return 1;
    }
    struct bpf_program *prog;
    bpf_object__for_each_program(prog, obj) {
        if (!bpf_program__attach(prog)) {
            fprintf(stderr, "execprobe: attaching %s failed: %s\n", bpf_program__name(prog), strerror(errno));
            return 1;
        }
    }
    struct ring_buffer *rb = ring_buffer__new(bpf_object__find_map_fd_by_name(obj, "events"), on_record, NULL,
                                              NULL);
    if (!rb) {
        fprintf(stderr, "execprobe: ring buffer: %s\n", strerror(errno));
        return 1;
    }
    int lost_fd = bpf_object__find_map_fd_by_name(obj, "lost");
    int ncpu = libbpf_num_possible_cpus();
    uint64_t *percpu = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(uint64_t));
    uint64_t reported = 0;

    static const char ready[] = "{\"type\": \"kg_exec_ready\"}\n";
    out_len = 0;
    memcpy(out, ready, sizeof(ready) - 1);
    out_len = sizeof(ready) - 1;
    flush_out();

    while (!stopping && !out_broken) {
        struct timespec pause = {0, DRAIN_MS * 1000000L};
        nanosleep(&pause, NULL);
        uint64_t drained = monotonic_ns();
        ring_buffer__consume(rb);
        uint32_t zero = 0;
        if (lost_fd >= 0 && percpu && bpf_map_lookup_elem(lost_fd, &zero, percpu) == 0) {
            uint64_t total = 0;
            for (int c = 0; c < ncpu; c++)
                total += percpu[c];
            if (total > reported) {
                line_len = 0;
                putf("{\"type\": \"lost_events\", \"data\": {\"events\": %llu}}\n",
                     (unsigned long long)(total - reported));
                if (out_len + line_len > sizeof(out))
                    flush_out();
                memcpy(out + out_len, line, line_len);
                out_len += line_len;
                line_len = 0;
                reported = total;
            }
        }
        line_len = 0;
        putf("{\"type\": \"kg_drain_exec\", \"data\": %llu}\n", (unsigned long long)drained);
        if (out_len + line_len > sizeof(out))
            flush_out();
        memcpy(out + out_len, line, line_len);
        out_len += line_len;
        line_len = 0;
        flush_out();
    }
    ring_buffer__consume(rb);
    flush_out();
    ring_buffer__free(rb);
    bpf_object__close(obj);
    return 0;
}
