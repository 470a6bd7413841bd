// SPDX-License-Identifier: GPL-2.0
/* kubeguard's compiled exec probe: the exec, process-exit, connect and accept parts of kubeguard.bt in one BPF
 * program per event, so an exec costs ~1.5 us of probe time instead of ~9 us and a connect ~0.15 us instead of
 * ~0.75 (bpftrace 0.17 runs a program and a perf output per printed line, and two programs per connect; see
 * docs/sensors.md). execprobe.c loads it and prints the same lines kubeguard.bt's exec, execfacts, execenv,
 * procexit, connect and accept sections print, so one decoder reads both.
 *
 * Records (ring buffer, no wake-up per record: the reader drains every 20 ms):
 *   EXEC  a successful exec, at sched_process_exec (the new image is set up, before its first instruction):
 *         the header fields, the file name the caller passed (bprm->filename), argv as the new mm holds it,
 *         the cwd walked upward crossing mounts (as kubeguard.bt's W lines), loginuid, session id, tty,
 *         capabilities and the exec facts of kubeguard.bt's XF line; packed (struct exec_packed): the strings
 *         back to back, the record as long as they are;
 *   EXEC_ENV  instead of EXEC when the environment is wanted (Falco's proc.env): the EXEC record with up to
 *         4096 bytes of the environment after its strings;
 *   FAIL  a failed execve/execveat, at the syscall's exit: the file name and argv from the caller's memory
 *         (still its own after a failure), through the syscall's saved registers;
 *   EXIT  a process (thread group leader) exiting, with its exit code;
 *   CONN  a connect() with an address, at the syscall's exit: the fd, the result, the peer from the caller's
 *         sockaddr, the protocol and local end from the socket (the connect section's C4, C6 and CU lines);
 *   ACPT  a successful accept() or accept4(), at the syscall's exit: the new fd, the ends from its socket (the
 *         accept section's AC4 and AC6 lines);
 *   SOCK  a socket() call of domain AF_PACKET, at its exit: the result and the arguments (the socket section's SK
 *         line; any other domain costs one comparison).
 * Build: clang -O2 -g -target bpf -D__TARGET_ARCH_x86 [-DWANT_ENV] -I<dir of vmlinux.h> -c execprobe.bpf.c */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define STR_LEN 64       /* as BPFTRACE_STRLEN=64 in kubeguard.bt: 63 bytes and a NUL */
#define FILENAME_LEN 256
#define ARGS_LEN 1024    /* argv bytes copied (whole on E lines; the split lines keep 15 arguments of 63 bytes) */
#define ARGV_MAX 15
#define CWD_MAX 10       /* 9 components (kubeguard.bt's three W lines) and whether the next is the root */
#define ENV_LEN 4096     /* Falco's MAX_PROC_ARG_ENV */

#define REC_EXEC 1
#define REC_FAIL 3
#define REC_EXIT 4
#define REC_CONNECT 5
#define REC_ACCEPT 6
#define REC_SOCKET 7
#define REC_EXEC_ENV 8

#define UNIX_PATH_LEN 108 /* sizeof(sockaddr_un.sun_path) */

#define FACT_PGRP_LEADER 1
#define FACT_UPPER_LAYER 2
#define FACT_PID_ONE 4
#define FACT_FROM_MEMFD 8
#define OVERLAYFS_MAGIC 0x794c7630

struct header {
    u32 type;
    u32 tgid, tid, ppid, uid, gid, pidns, vpid;
    u64 ktime, cgroup;
    char comm[16];
};

/* A successful exec: the fixed fields, then `data`: the file name (filename_len bytes, its NUL included), argv
 * (args_len bytes, NUL-separated), the cwd's names leaf first (cwd_len[i] bytes each, NULs included; 0: none) and,
 * in a REC_EXEC_ENV record, the environment (env_copied bytes of env_length). Offsets into `data` stay below a
 * power of two at each step (the verifier's bound): the file name below 256, argv from below 512, the names and
 * the environment from below 2048. */
#define PACK_ARGS_MASK 511
#define PACK_NAMES_MASK 2047
#define PACK_DATA_MASK 8191
struct exec_packed {
    struct header h;
    u32 loginuid, sid, tty_major, tty_minor, facts, args_len, filename_len, env_copied;
    u64 cap_permitted, cap_effective, cap_inheritable, env_length;
    u8 cwd_root[CWD_MAX], cwd_len[CWD_MAX];
    u32 pad;
    char data[PACK_DATA_MASK + 1];
};

struct fail_rec {
    struct header h;
    s64 ret;
    u32 loginuid, sid, tty_major, tty_minor, argc, pad;
    char filename[STR_LEN];
    char argv[ARGV_MAX][STR_LEN];
    char cwd[CWD_MAX][STR_LEN];
    u8 cwd_root[CWD_MAX];
    u8 cwd_pad[6];
};

struct exit_rec {
    struct header h;
    u32 status, pad;
};

/* connect and accept: family 2 (addresses in the first 4 bytes), 10 or 1 (path only, connect) */
struct conn_rec {
    struct header h;
    s32 fd, ret;
    u32 family, proto, rport, lport;
    u32 accept4, pad;
    u8 raddr[16], laddr[16];
    char path[128];                /* UNIX_PATH_LEN bytes at most, NUL-terminated */
};

struct socket_rec {
    struct header h;
    s32 ret, domain, type, protocol;
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 16 << 20); /* the loader may resize before load */
} events SEC(".maps");

/* records dropped because the ring was full, per kind (the reader reports them as lost events) */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u64);
} lost SEC(".maps");

/* the exec record being built, per CPU (a raw tracepoint's program runs with preemption off, never nested) */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, struct exec_packed);
} scratch SEC(".maps");

static __always_inline void count_lost(void)
{
    u32 zero = 0;
    u64 *v = bpf_map_lookup_elem(&lost, &zero);
    if (v)
        *v += 1;
}

/* Re-types an address as a read-only BTF pointer (inlined by the verifier into a register move), so fields
 * behind it are read with direct loads instead of one bpf_probe_read_kernel call each. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

static __always_inline void fill_header(struct header *h, struct task_struct *t, u32 type)
{
    const struct cred *cred = t->cred;
    struct pid *tp = t->thread_pid;
    unsigned int level = tp->level;
    struct upid *up = bpf_rdonly_cast((void *)tp + bpf_core_field_offset(struct pid, numbers) +
                                      (level & 31) * bpf_core_type_size(struct upid),
                                      bpf_core_type_id_kernel(struct upid));

    h->type = type;
    h->ktime = bpf_ktime_get_ns();
    h->tgid = t->tgid;
    h->tid = t->pid;
    h->ppid = t->real_parent->tgid;
    h->uid = cred->uid.val;
    h->gid = cred->gid.val;
    h->cgroup = bpf_get_current_cgroup_id();
    h->vpid = up->nr;
    h->pidns = up->ns->ns.inum;
    bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* loginuid, session id (the nr of the session's struct pid, as kubeguard.bt reads it) and tty */
static __always_inline void fill_session(struct task_struct *t, u32 *loginuid, u32 *sid, u32 *major, u32 *minor)
{
    struct signal_struct *sig = t->signal;
    struct pid *sidp = sig->pids[PIDTYPE_SID];
    struct tty_struct *tty = sig->tty;

    *loginuid = t->loginuid.val;
    *sid = sidp ? sidp->numbers[0].nr : 0;
    if (tty) {
        *major = tty->driver->major;
        *minor = tty->driver->minor_start + tty->index;
    } else {
        *major = 0;
        *minor = 0;
    }
}

/* The cwd, leaf first, as kubeguard.bt's W lines walk it: before each component, a dentry that is its mount's
 * root moves to the mount point in the parent mount (struct mount embeds the vfsmount). Past the root every
 * component is the root again: its flag is set and its name left empty. The names go into `cwd`'s slots, or, with
 * `data` (a packed record's), back to back from `data + off` with their lengths in `lens`; returns the offset
 * after them. */
static __always_inline u32 walk_cwd(struct task_struct *t, char cwd[CWD_MAX][STR_LEN], u8 *root, char *data,
                                    u32 off, u8 *lens)
{
    u32 vm_id = bpf_core_type_id_kernel(struct vfsmount), m_id = bpf_core_type_id_kernel(struct mount);
    u64 mnt_off = bpf_core_field_offset(struct mount, mnt);
    struct dentry *d = t->fs->pwd.dentry;
    struct vfsmount *vm = bpf_rdonly_cast(t->fs->pwd.mnt, vm_id);
    int at_root = 0;
#pragma unroll
    for (int i = 0; i < CWD_MAX; i++) {
        if (data)
            lens[i] = 0;
        if (at_root) {
            root[i] = 1;
            if (!data && i < CWD_MAX - 1)
                cwd[i][0] = 0;
            continue;
        }
        struct mount *m = bpf_rdonly_cast((void *)vm - mnt_off, m_id);
        struct mount *parent_mnt = m->mnt_parent;
        if (d == vm->mnt_root && parent_mnt != m) {
            d = m->mnt_mountpoint;
            vm = bpf_rdonly_cast((void *)parent_mnt + mnt_off, vm_id);
        }
        struct dentry *up = d->d_parent;
        at_root = d == up;
        root[i] = at_root;
        if (i < CWD_MAX - 1) {
            if (data) {
                long n = bpf_probe_read_kernel_str(&data[off & PACK_NAMES_MASK], STR_LEN, d->d_name.name);
                if (n > 0) {
                    lens[i] = n;
                    off += n;
                }
            } else {
                bpf_probe_read_kernel_str(cwd[i], STR_LEN, d->d_name.name);
            }
        }
        d = up;
    }
    return off;
}

/* A successful exec as a packed record, built in this CPU's scratch and copied out at its length (a fixed-size
 * reservation wrote ~2-6 KB of cold ring memory per exec, most of it unused) */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
    u32 zero = 0;
    struct exec_packed *r = bpf_map_lookup_elem(&scratch, &zero);
    if (!r)
        return 0;
    struct mm_struct *mm = p->mm;
#ifdef WANT_ENV /* Falco's proc.env is read by a loaded rule */
    fill_header(&r->h, p, REC_EXEC_ENV);
#else
    fill_header(&r->h, p, REC_EXEC);
#endif
    fill_session(p, &r->loginuid, &r->sid, &r->tty_major, &r->tty_minor);

    const struct cred *cred = p->cred;
    r->cap_permitted = cred->cap_permitted.val;
    r->cap_effective = cred->cap_effective.val;
    r->cap_inheritable = cred->cap_inheritable.val;

    /* the facts of kubeguard.bt's XF line */
    u32 facts = 0;
    if (p->signal->pids[PIDTYPE_PGID] == p->thread_pid)
        facts |= FACT_PGRP_LEADER;
    if (r->h.vpid == 1)
        facts |= FACT_PID_ONE;
    struct file *exe = bprm->file;
    struct inode *ino = exe->f_inode;
    if (ino->i_sb->s_magic == OVERLAYFS_MAGIC) {
        struct ovl_inode *oi = bpf_rdonly_cast((void *)ino - bpf_core_field_offset(struct ovl_inode, vfs_inode),
                                               bpf_core_type_id_kernel(struct ovl_inode));
        if (oi->__upperdentry)
            facts |= FACT_UPPER_LAYER;
    }
    char prefix[8] = {};
    bpf_probe_read_kernel(prefix, 6, exe->f_path.dentry->d_name.name);
    if (prefix[0] == 'm' && prefix[1] == 'e' && prefix[2] == 'm' && prefix[3] == 'f' && prefix[4] == 'd' &&
        prefix[5] == ':')
        facts |= FACT_FROM_MEMFD;
    r->facts = facts;

    u32 off = 0;
    long n = bpf_probe_read_kernel_str(r->data, FILENAME_LEN, bprm->filename);
    if (n > 0)
        off = n;
    r->filename_len = off;

    unsigned long as = mm->arg_start, ae = mm->arg_end;
    u64 alen = ae > as ? ae - as : 0;
    if (alen > ARGS_LEN)
        alen = ARGS_LEN;
    r->args_len = 0;
    if (alen > 0 && alen <= ARGS_LEN && bpf_probe_read_user(&r->data[off & PACK_ARGS_MASK], alen, (void *)as) == 0) {
        r->args_len = alen;
        off += alen;
    }

    off = walk_cwd(p, 0, r->cwd_root, r->data, off, r->cwd_len);

    r->env_length = 0;
    r->env_copied = 0;
#ifdef WANT_ENV
    {
        unsigned long start = mm->env_start, end = mm->env_end;
        u64 length = end > start ? end - start : 0;
        u32 copy = length > ENV_LEN ? ENV_LEN : (u32)length;
        r->env_length = length;
        if (copy > 0 && copy <= ENV_LEN &&
            bpf_probe_read_user(&r->data[off & PACK_NAMES_MASK], copy, (void *)start) == 0) {
            r->env_copied = copy;
            off += copy;
        }
    }
#endif
    u64 size = offsetof(struct exec_packed, data) + (off & PACK_DATA_MASK);
    if (bpf_ringbuf_output(&events, r, size, BPF_RB_NO_WAKEUP) != 0)
        count_lost();
    return 0;
}

static __always_inline int on_fail(long ret, const char *filename, const char *const *argv)
{
    if (ret >= 0)
        return 0;
    struct fail_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
    if (!r) {
        count_lost();
        return 0;
    }
    struct task_struct *t = bpf_get_current_task_btf();
    fill_header(&r->h, t, REC_FAIL);
    fill_session(t, &r->loginuid, &r->sid, &r->tty_major, &r->tty_minor);
    r->ret = ret;
    r->filename[0] = 0;
    bpf_probe_read_user_str(r->filename, STR_LEN, filename);
    u32 argc = 0;
#pragma unroll
    for (int i = 0; i < ARGV_MAX; i++) {
        const char *arg = 0;
        if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) != 0 || !arg)
            break;
        r->argv[i][0] = 0;
        bpf_probe_read_user_str(r->argv[i], STR_LEN, arg);
        argc = i + 1;
    }
    r->argc = argc;
    walk_cwd(t, r->cwd, r->cwd_root, 0, 0, 0);
    bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
    return 0;
}

/* The syscall's arguments at its exit: the registers saved at its entry (x86-64: di, si, dx). */
SEC("tracepoint/syscalls/sys_exit_execve")
int on_execve_exit(struct trace_event_raw_sys_exit *ctx)
{
    if (ctx->ret >= 0)
        return 0;
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
    return on_fail(ctx->ret, (const char *)BPF_CORE_READ(regs, di), (const char *const *)BPF_CORE_READ(regs, si));
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int on_execveat_exit(struct trace_event_raw_sys_exit *ctx)
{
    if (ctx->ret >= 0)
        return 0;
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
    return on_fail(ctx->ret, (const char *)BPF_CORE_READ(regs, si), (const char *const *)BPF_CORE_READ(regs, dx));
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
    if (p->pid != p->tgid)
        return 0;
    struct exit_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
    if (!r) {
        count_lost();
        return 0;
    }
    fill_header(&r->h, p, REC_EXIT);
    r->status = p->exit_code;
    bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
    return 0;
}

/* The socket behind the caller's descriptor `fd`, as kubeguard.bt reads it (files->fdt->fd[fd]->private_data->sk);
 * NULL when `fd` is out of the table or empty. Direct loads through BTF pointers but for the table's slot. */
static __always_inline struct sock *sock_of(struct task_struct *t, int fd)
{
    struct fdtable *fdt = t->files->fdt;
    if (fd < 0 || (unsigned int)fd >= fdt->max_fds)
        return 0;
    struct file *f = 0;
    if (bpf_probe_read_kernel(&f, sizeof(f), &fdt->fd[fd]) != 0 || !f)
        return 0;
    f = bpf_rdonly_cast(f, bpf_core_type_id_kernel(struct file));
    struct socket *sock = bpf_rdonly_cast(f->private_data, bpf_core_type_id_kernel(struct socket));
    return sock->sk;
}

/* the local end and protocol: family 2 or 10 */
static __always_inline void local_end(struct conn_rec *r, struct sock *sk)
{
    if (!sk)
        return;
    r->proto = sk->sk_protocol;
    r->lport = sk->__sk_common.skc_num;
    if (r->family == 2)
        *(u32 *)r->laddr = sk->__sk_common.skc_rcv_saddr;
    else
        __builtin_memcpy(r->laddr, sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
}

static __always_inline struct conn_rec *conn_reserve(u32 type)
{
    struct conn_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
    if (!r) {
        count_lost();
        return 0;
    }
    fill_header(&r->h, bpf_get_current_task_btf(), type);
    r->proto = r->rport = r->lport = r->accept4 = r->pad = 0;
    __builtin_memset(r->raddr, 0, sizeof(r->raddr));
    __builtin_memset(r->laddr, 0, sizeof(r->laddr));
    r->path[0] = 0;
    return r;
}

/* connect() as kubeguard.bt's connect section reports it: a call with an address, of family 2, 10 or 1 as the
 * caller's sockaddr holds it at the return (the section's exit probe reads it then too); the arguments from the
 * registers saved at the call's entry (x86-64: di, si), so one program instead of the section's two */
SEC("tracepoint/syscalls/sys_exit_connect")
int on_connect(struct trace_event_raw_sys_exit *ctx)
{
    struct task_struct *t = bpf_get_current_task_btf();
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);
    int fd = (int)BPF_CORE_READ(regs, di);
    void *uservaddr = (void *)BPF_CORE_READ(regs, si);
    s32 addrlen = (s32)BPF_CORE_READ(regs, dx);
    u16 family = 0;
    if (!uservaddr || bpf_probe_read_user(&family, sizeof(family), uservaddr) != 0)
        return 0;
    if (family != 2 && family != 10 && family != 1)
        return 0;
    struct conn_rec *r = conn_reserve(REC_CONNECT);
    if (!r)
        return 0;
    r->fd = fd;
    r->ret = (s32)ctx->ret;
    r->family = family;
    if (family == 1) {
        /* the path's bytes the caller passed (addrlen), not a fixed 108: a short address at the end of a page
         * would otherwise fail the whole read and hide the path (bpftrace's section reads 108 for paths over 63) */
        u32 n = addrlen > 2 ? (u32)addrlen - 2 : 0;
        if (n > UNIX_PATH_LEN)
            n = UNIX_PATH_LEN;
        barrier_var(n); /* keep the mask below in the program: the verifier needs it, the compiler sees n <= 108 */
        n &= 127;
        if (bpf_probe_read_user(r->path, n, uservaddr + 2) != 0)
            n = 0;
        r->path[n] = 0;
    } else {
        u16 port = 0;
        bpf_probe_read_user(&port, sizeof(port), uservaddr + 2);
        r->rport = bpf_ntohs(port);
        if (family == 2)
            bpf_probe_read_user(r->raddr, 4, uservaddr + 4);
        else
            bpf_probe_read_user(r->raddr, 16, uservaddr + 8);
        if (r->ret != -88 && r->ret != -9) /* ENOTSOCK, EBADF: no socket behind the fd (zeros, not a file's bytes) */
            local_end(r, sock_of(t, fd));
    }
    bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
    return 0;
}

/* a successful accept() or accept4(), as kubeguard.bt's accept section reports it: both ends from the new
 * socket (family 2 or 10) */
static __always_inline int on_accepted(long ret, u32 accept4)
{
    if (ret < 0)
        return 0;
    struct sock *sk = sock_of(bpf_get_current_task_btf(), (int)ret);
    if (!sk)
        return 0;
    u16 family = sk->__sk_common.skc_family;
    if (family != 2 && family != 10)
        return 0;
    struct conn_rec *r = conn_reserve(REC_ACCEPT);
    if (!r)
        return 0;
    r->accept4 = accept4;
    r->fd = (s32)ret;
    r->ret = (s32)ret;
    r->family = family;
    r->rport = bpf_ntohs(sk->__sk_common.skc_dport);
    if (family == 2)
        *(u32 *)r->raddr = sk->__sk_common.skc_daddr;
    else
        __builtin_memcpy(r->raddr, sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16);
    local_end(r, sk);
    bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
    return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int on_accept_exit(struct trace_event_raw_sys_exit *ctx)
{
    return on_accepted(ctx->ret, 0);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int on_accept4_exit(struct trace_event_raw_sys_exit *ctx)
{
    return on_accepted(ctx->ret, 1);
}

/* socket() of domain AF_PACKET (17), the one a Falco rule reads, as kubeguard.bt's socket section reports it;
 * the arguments from the registers saved at the call's entry (x86-64: di, si, dx) */
SEC("tracepoint/syscalls/sys_exit_socket")
int on_socket_exit(struct trace_event_raw_sys_exit *ctx)
{
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
    s32 domain = (s32)BPF_CORE_READ(regs, di);
    if (domain != 17)
        return 0;
    struct socket_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
    if (!r) {
        count_lost();
        return 0;
    }
    fill_header(&r->h, bpf_get_current_task_btf(), REC_SOCKET);
    r->ret = (s32)ctx->ret;
    r->domain = domain;
    r->type = (s32)BPF_CORE_READ(regs, si);
    r->protocol = (s32)BPF_CORE_READ(regs, dx);
    bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
    return 0;
}
