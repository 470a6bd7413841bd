// SPDX-License-Identifier: GPL-2.0
/* kubeguard's compiled exec guard: execguard.py's bpftrace program (`program()`) as tp_btf programs, which the
 * kernel calls directly instead of through the perf tracepoint path. Same maps (names, key and value sizes as
 * bpftrace 0.17 lays them out, so ExecGuard writes them and the hold trap finds @p as before), same decisions;
 * execguard.c loads it and prints the lines the bpftrace program prints.
 *
 * Records (ring buffer, default wake-up: a held interpreter waits for its S line):
 *   K  an exec killed (pid, cgroup, inode, why: 1 not in the profile, 2 drifted, 8 a 32-bit interpreter it would
 *      hold, whose system calls the hold trap cannot see), or a process killed as it maps a drifted file
 *      executable or makes its mapping executable (why 4: zero drift for shared objects, LD_PRELOAD, dlopen and a
 *      manual loader's mprotect alike);
 *   S  an interpreter held (SIGSTOP) until the script answerer's answer;
 *   N  an exec held (SIGSTOP) in a container the plan does not know yet, below a pod cgroup in @g with MODE_POD:
 *      the agent builds that container's plan, then kills it or has the answerer judge it;
 *   E  a held process killed by the hold trap (its SIGKILL to itself);
 *   Q  the script answerer exited: the loader ends (bpftrace's exit()).
 * Build: clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I<dir of vmlinux.h> -c execguard.bpf.c */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define STRLEN 64          /* bpftrace's string size: a string in a map key takes that many bytes */
#define ARGV0_MAX 256      /* argv[0] longer than this: argv[1] is not looked for (held) */
#define INIT_USER_NS 0xEFFFFFFDu
#define CTIME_NSEC_MASK 0x7fffffffu
#define MODE_PROFILE 1
#define MODE_DRIFT 2
#define MODE_POD 4 /* a pod cgroup: its containers not in @g are held at exec until the agent plans them */
#define SIG_KILL 9
#define SIG_CONT 18
#define SIG_STOP 19
#define PROT_EXEC 4
#define BAD_MAPPED 4
#define BAD_32BIT 8       /* an interpreter to hold in a 32-bit address space: the hold trap cannot see its calls */
#define ADDR32_END 0x100000000ull /* task_size of an ia32 or x32 process is below it, of a 64-bit one far above */

#define REC_KILL 1
#define REC_HOLD 2
#define REC_TRAP 3
#define REC_QUIT 4
#define REC_NEW 5

/* Both in one cache line (.data), read by the exit program at every exit of the node:
 * the answerer's pid (bpftrace's $1), set by the loader before load; and at least the number of entries in @p
 * (raised before an insert, lowered after a delete; only these programs change @p, the hold trap reads it): the
 * signal and exit programs, which run at every signal and exit of the node, skip their @p lookup while nothing
 * is held. */
SEC(".data") volatile u32 answerer_tgid;
SEC(".data") volatile s64 held;

struct key1 {
    u64 cgroup;
};

struct key2 {
    u64 cgroup, ino;
};

struct key_path {
    u64 cgroup;
    char path[STRLEN];
};

/* max_entries: set by the loader to ExecGuard's map_keys_max */
#define HASH(name, key_type)                                                                                       \
    struct {                                                                                                        \
        __uint(type, BPF_MAP_TYPE_HASH);                                                                            \
        __uint(max_entries, 4096);                                                                                  \
        __type(key, key_type);                                                                                      \
        __type(value, s64);                                                                                         \
    } name SEC(".maps")

HASH(AT_g, struct key1);     /* cgroup -> mode (a container), or MODE_POD (a pod) */
HASH(AT_s, struct key1);     /* cgroup -> zero-drift start (ns) */
HASH(AT_a, struct key2);     /* (cgroup, inode) -> 1: allowed */
HASH(AT_i, struct key2);     /* (cgroup, inode) -> 1 interpreter, 2 one that takes -c, 3 a shell (takes -c) */
HASH(AT_c, struct key_path); /* (cgroup, script path) -> 1: released without a hold */
HASH(AT_m, struct key1);     /* cgroup -> the container's mount namespace */
HASH(AT_r, struct key1);     /* cgroup (container or pod) -> its runtime's mount namespace */
HASH(AT_p, struct key1);     /* pid (tgid) -> 1: held */

struct rec {
    u32 type, pid;
    u64 cgroup, ino;
    s64 bad;
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 20);
} events SEC(".maps");

static __always_inline void emit(u32 type, u32 pid, u64 cgroup, u64 ino, s64 bad)
{
    struct rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
    if (!r)
        return; /* as bpftrace's lost perf events */
    r->type = type;
    r->pid = pid;
    r->cgroup = cgroup;
    r->ino = ino;
    r->bad = bad;
    bpf_ringbuf_submit(r, 0);
}

static __always_inline s64 lookup(void *map, void *key)
{
    s64 *v = bpf_map_lookup_elem(map, key);
    return v ? *v : 0;
}

static __always_inline void release(struct key1 *k)
{
    if (bpf_map_delete_elem(&AT_p, k) == 0)
        __sync_fetch_and_add(&held, -1);
}

/* whether `c` is one of POSIX sh's options that take no argument and change nothing about what is read: a, b, C,
 * e, f, h, m, n, u, v, x (not c: code; s: stdin; i, o and the others) */
static __always_inline int plain_shell_option(char c)
{
    return c == 'a' || c == 'b' || c == 'C' || c == 'e' || c == 'f' || c == 'h' || c == 'm' || c == 'n' ||
           c == 'u' || c == 'v' || c == 'x';
}

/* argv[1] names a script released without a hold (@c), or is -c to a shell or python (@i value 2 or 3); or, for a
 * shell (@i value 3), argv[1] is only such options (`-e`, `-eux`) and argv[2] names a script in @c: the answerer
 * would name that same script (scripts.script_of_argv: those options are skipped, the first operand is it) */
static __always_inline int unheld(struct mm_struct *mm, u64 cgroup, s64 kind)
{
    char argv0[ARGV0_MAX + 1];
    struct key_path kp = {.cgroup = cgroup};
    u64 s = mm->arg_start;
    /* the length of argv[0] (ARGV0_MAX: no NUL in its first ARGV0_MAX bytes) */
    long got = bpf_probe_read_user_str(argv0, sizeof(argv0), (void *)s);
    if (got <= 0)
        return 0;
    u64 n = (u64)got - 1;
    /* only when argv[0] ended within ARGV0_MAX bytes (else argv[1] is not found: a longer argv[0] could spell a
     * path in its tail) and an argv[1] follows it (not the first environment string) */
    if (n >= ARGV0_MAX || s + n + 1 >= (u64)mm->arg_end)
        return 0;
    long got1 = bpf_probe_read_user_str(kp.path, sizeof(kp.path), (void *)(s + n + 1));
    if (lookup(&AT_c, &kp))
        return 1;
    if (kind >= 2 && kp.path[0] == '-' && kp.path[1] == 'c' && kp.path[2] == 0)
        return 1;
    /* a shell's argv[1] of plain options, read whole (got1 counts its NUL), then argv[2] */
    if (kind != 3 || got1 < 3 || got1 >= (long)sizeof(kp.path) || kp.path[0] != '-')
        return 0;
    for (int j = 1; j < STRLEN; j++) {
        if (j >= got1 - 1)
            break;
        if (!plain_shell_option(kp.path[j]))
            return 0;
    }
    u64 a2 = s + n + 1 + (u64)got1;
    if (a2 >= (u64)mm->arg_end)
        return 0;
    __builtin_memset(kp.path, 0, sizeof(kp.path)); /* the key is the whole array: no byte of argv[1] may stay */
    bpf_probe_read_user_str(kp.path, sizeof(kp.path), (void *)a2);
    return lookup(&AT_c, &kp) != 0;
}

/* stop the calling process (SIGSTOP) and report it: REC_HOLD (an interpreter, for the answerer) or REC_NEW */
static __always_inline void stop_and_report(u64 cgroup, u32 type)
{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    struct key1 kp = {.cgroup = pid};
    s64 one = 1;
    bpf_send_signal(SIG_STOP);
    __sync_fetch_and_add(&held, 1);
    if (bpf_map_update_elem(&AT_p, &kp, &one, BPF_NOEXIST) != 0)
        __sync_fetch_and_add(&held, -1); /* already there (or the map is full, as bpftrace's would be) */
    emit(type, pid, cgroup, 0, 0);
}

/* an exec in a cgroup with no mode: held when its parent is a pod cgroup of a protected workload (MODE_POD), i.e.
 * a container the agent has not planned yet (a new replica's, a restarted one's), unless it is the runtime's own
 * exec (runc init, from the runtime's mount namespace the agent gave for the pod) */
static __always_inline int new_container(struct task_struct *t, u64 cgroup)
{
    int level = t->cgroups->dfl_cgrp->level;
    if (level < 1)
        return 0;
    struct key1 pod = {.cgroup = bpf_get_current_ancestor_cgroup_id(level - 1)};
    if (lookup(&AT_g, &pod) != MODE_POD)
        return 0;
    struct mnt_namespace *ns = t->nsproxy->mnt_ns;
    if (ns->ns.inum == lookup(&AT_r, &pod) && ns->user_ns->ns.inum == INIT_USER_NS)
        return 0;
    stop_and_report(cgroup, REC_NEW);
    return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(guard_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
    struct key1 k1 = {.cgroup = bpf_get_current_cgroup_id()};
    s64 mode = lookup(&AT_g, &k1);
    struct task_struct *t = bpf_get_current_task_btf();
    if (!mode)
        return new_container(t, k1.cgroup);
    if (mode == MODE_POD)
        return 0;
    struct inode *i = bprm->file->f_inode; /* the new mm's exe_file (bpftrace: curtask->mm->exe_file) */
    struct key2 k2 = {.cgroup = k1.cgroup, .ino = i->i_ino};
    s64 bad = 0;
    if ((mode & MODE_PROFILE) && lookup(&AT_a, &k2) == 0)
        bad = 1;
    /* i_ctime_nsec's top bit is a flag (I_CTIME_QUERIED, multigrain timestamps since Linux 6.13), not time */
    if ((mode & MODE_DRIFT) &&
        (u64)i->i_ctime_sec * 1000000000 + (i->i_ctime_nsec & CTIME_NSEC_MASK) > (u64)lookup(&AT_s, &k1))
        bad |= 2;
    int hold = 0;
    s64 kind = bad == 0 ? lookup(&AT_i, &k2) : 0;
    if (kind)
        hold = !unheld(t->mm, k1.cgroup, kind);
    if (hold && t->mm->task_size < ADDR32_END) { /* syscall tracepoints skip 32-bit calls (holdtrap.py) */
        bad = BAD_32BIT;
        hold = 0;
    }
    if (!bad && !hold)
        return 0;
    /* is this the runtime's own exec into the cgroup (runc init, from the runtime's mount namespace)? It is not
     * the container's and is neither killed nor held. A mount namespace the container made is judged. */
    struct mnt_namespace *ns = t->nsproxy->mnt_ns;
    u64 mnt = lookup(&AT_m, &k1), runtime = lookup(&AT_r, &k1), inum = ns->ns.inum;
    if (mnt && inum != mnt && ns->user_ns->ns.inum == INIT_USER_NS && (runtime == 0 || inum == runtime))
        return 0;
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (bad) {
        bpf_send_signal(SIG_KILL);
        emit(REC_KILL, pid, k1.cgroup, k2.ino, bad);
    } else {
        stop_and_report(k1.cgroup, REC_HOLD);
    }
    return 0;
}

/* zero drift for code mapped from files (mmap PROT_EXEC of a file: the loader's shared objects, LD_PRELOAD's,
 * dlopen's): a file changed after its container started is killed at the call's entry, so the signal is delivered
 * as the call returns and none of the file's code runs. Anonymous mappings (JIT) are not files. */
SEC("tracepoint/syscalls/sys_enter_mmap")
int guard_mmap(struct trace_event_raw_sys_enter *ctx)
{
    long fd = (long)ctx->args[4];
    if (!(ctx->args[2] & PROT_EXEC) || fd < 0)
        return 0;
    struct key1 k1 = {.cgroup = bpf_get_current_cgroup_id()};
    s64 mode = lookup(&AT_g, &k1);
    if (mode == MODE_POD || !(mode & MODE_DRIFT))
        return 0;
    struct task_struct *t = bpf_get_current_task_btf();
    struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
    if (!fdt || (u64)fd >= (u64)BPF_CORE_READ(fdt, max_fds))
        return 0;
    struct file **fds = BPF_CORE_READ(fdt, fd);
    struct file *f = NULL;
    if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) != 0 || !f)
        return 0;
    struct inode *i = BPF_CORE_READ(f, f_inode);
    u64 ctime = (u64)BPF_CORE_READ(i, i_ctime_sec) * 1000000000 + (BPF_CORE_READ(i, i_ctime_nsec) & CTIME_NSEC_MASK);
    if (ctime <= (u64)lookup(&AT_s, &k1))
        return 0;
    bpf_send_signal(SIG_KILL);
    emit(REC_KILL, bpf_get_current_pid_tgid() >> 32, k1.cgroup, BPF_CORE_READ(i, i_ino), BAD_MAPPED);
    return 0;
}

/* zero drift for code made executable later: mprotect(PROT_EXEC) of a range holding a mapping of a file changed
 * after the container started (a manual loader maps a shared object readable, then makes it executable): killed
 * at the call's entry, as at mmap. The range's mappings are found with bpf_find_vma, up to MPROTECT_VMAS of them. */
#define MPROTECT_VMAS 8

struct vma_check {
    u64 start_ns; /* the container's zero-drift start */
    u64 next;     /* the end of the mapping just looked at: where the next one starts */
    u64 ino;      /* the drifted file's inode, when one was found */
};

static long check_vma(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
    struct vma_check *c = data;
    c->next = BPF_CORE_READ(vma, vm_end);
    struct file *f = BPF_CORE_READ(vma, vm_file);
    if (!f)
        return 0; /* anonymous memory (a JIT's): not a file */
    struct inode *i = BPF_CORE_READ(f, f_inode);
    u64 ctime = (u64)BPF_CORE_READ(i, i_ctime_sec) * 1000000000 + (BPF_CORE_READ(i, i_ctime_nsec) & CTIME_NSEC_MASK);
    if (ctime > c->start_ns)
        c->ino = BPF_CORE_READ(i, i_ino);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_mprotect")
int guard_mprotect(struct trace_event_raw_sys_enter *ctx)
{
    if (!(ctx->args[2] & PROT_EXEC))
        return 0;
    struct key1 k1 = {.cgroup = bpf_get_current_cgroup_id()};
    s64 mode = lookup(&AT_g, &k1);
    if (mode == MODE_POD || !(mode & MODE_DRIFT))
        return 0;
    struct vma_check c = {.start_ns = (u64)lookup(&AT_s, &k1)};
    struct task_struct *t = bpf_get_current_task_btf();
    u64 addr = ctx->args[0], end = addr + ctx->args[1];
    for (int n = 0; n < MPROTECT_VMAS && addr < end && !c.ino; n++) {
        c.next = 0;
        if (bpf_find_vma(t, addr, check_vma, &c, 0) != 0 || c.next <= addr)
            break;
        addr = c.next;
    }
    if (!c.ino)
        return 0;
    bpf_send_signal(SIG_KILL);
    emit(REC_KILL, bpf_get_current_pid_tgid() >> 32, k1.cgroup, c.ino, BAD_MAPPED);
    return 0;
}

SEC("tp_btf/signal_generate")
int BPF_PROG(guard_signal, int sig, struct kernel_siginfo *info, struct task_struct *task)
{
    if (!held)
        return 0;
    s32 target = task->pid;
    struct key1 k = {.cgroup = (u64)(s64)target};
    if (!lookup(&AT_p, &k))
        return 0;
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (sig == SIG_CONT && pid == answerer_tgid) /* the answerer's SIGCONT: released */
        release(&k);
    /* the hold trap's SIGKILL (holdtrap.py: a held process made a system call, someone else resumed it) */
    if (sig == SIG_KILL && (s32)pid == target) {
        release(&k);
        emit(REC_TRAP, (u32)target, 0, 0, 0);
    }
    return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(guard_exit, struct task_struct *p)
{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (pid == answerer_tgid) {
        emit(REC_QUIT, pid, 0, 0, 0);
        return 0;
    }
    struct key1 k = {.cgroup = pid};
    if (held && lookup(&AT_p, &k))
        release(&k);
    return 0;
}
