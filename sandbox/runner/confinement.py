"""Confinement of a candidate process: what it is, what it sees, what it may ask the kernel.

The fork server (root, non-dumpable) forks; the child calls `confine` and only then reads the
program.  In order:

  1. private namespaces: mount (its own /tmp and /dev/shm: fresh tmpfs, size-capped, owned by
     it), IPC (its own SysV objects and POSIX message queues), network (its own loopback);
     everything in them vanishes with the request's last process
  2. its slot's CPU (sched_setaffinity): a CPU hog beside it slows only itself
  3. oom_score_adj 1000: under memory pressure the kernel kills candidates first
  4. its slot's uid and gid, no supplementary groups: every capability is gone, and the kernel
     refuses it the memory, signals, ptrace, priority and /proc files of every other uid
     (judges, the runner, init, the fork servers and the other slots)
  5. rlimits: address space, CPU seconds, file size, processes of its uid (the request's
     process budget, since one uid serves one request at a time), open files, no core files
  6. a seccomp *allowlist*: only the system calls below; anything else (ptrace,
     process_vm_*, io_uring, bpf, perf, namespaces, mount, keyrings, ...) fails with EPERM, and
     the signal-delivering fcntl/ioctl commands (F_SETOWN, F_SETSIG, F_SETLEASE, F_NOTIFY,
     FIOSETOWN, SIOCSPGRP) and namespace flags of clone are refused; clone3 answers ENOSYS so the
     C library falls back to clone, whose flags the filter can read

Docker (or gVisor) remains the boundary; this is the second layer, and the one that keeps
requests apart from each other.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import socket
import struct

from . import syscalls

CANDIDATE_UID_BASE = 20000  # slot i runs candidates as uid/gid 20000 + i
JUDGE_UID_BASE = 10000  # slot i runs its judge as uid/gid 10000 + i

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]


class ConfinementError(OSError):
    """The sandbox could not confine a process: an infrastructure failure, never the program's."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise ConfinementError(err, f"{what}: {os.strerror(err)}")


def prctl(option: int, arg2: int = 0) -> None:
    _check(_libc.prctl(option, arg2, 0, 0, 0), f"prctl({option})")


def set_dumpable(flag: bool) -> None:
    """Non-dumpable: no process without CAP_SYS_PTRACE may read our memory or /proc files."""
    prctl(4, 1 if flag else 0)  # PR_SET_DUMPABLE


# ----------------------------------------------------------------------------------------------
# Identities


def become(uid: int) -> None:
    """Drop to uid/gid `uid` for good (real, effective and saved), with no supplementary groups."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid):
        raise ConfinementError(errno.EPERM, f"could not become uid {uid}")
    with open("/proc/self/status") as f:
        caps = [line.split()[1] for line in f if line.startswith(("CapEff", "CapPrm"))]
    if any(int(c, 16) for c in caps):
        raise ConfinementError(errno.EPERM, "capabilities survived the uid change")


# ----------------------------------------------------------------------------------------------
# Private namespaces

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWNET = 0x00020000, 0x08000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 0x4000, 1 << 18


def private_world(uid: int, tmpfs_mb: int) -> None:
    """Own /tmp, /dev/shm, IPC objects and loopback, owned by `uid` (called as root)."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET), "unshare")
    # Docker's mounts are already private; gVisor refuses the call, and needs none
    _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    options = f"size={tmpfs_mb}m,mode=0700,uid={uid},gid={uid}"
    inodes = f",nr_inodes={max(1024, tmpfs_mb * 64)}"  # also caps files; gVisor 2022 lacks it
    for target in (b"/tmp", b"/dev/shm"):
        flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
        if _libc.mount(b"tmpfs", target, b"tmpfs", flags, (options + inodes).encode()) != 0:
            _check(_libc.mount(b"tmpfs", target, b"tmpfs", flags, options.encode()),
                   f"mount tmpfs on {target.decode()}")
    try:  # a program that serves itself on 127.0.0.1 works; isolation does not depend on it
        loopback_up()
    except OSError:  # gVisor answers these ioctls with ENOTTY
        pass


def loopback_up() -> None:
    """Bring `lo` up in the new network namespace (SIOCGIFFLAGS / SIOCSIFFLAGS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        import fcntl

        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), 0x8913, req))[1]
        fcntl.ioctl(s.fileno(), 0x8914, struct.pack("16sH14x", b"lo", flags | 0x1 | 0x40))


# ----------------------------------------------------------------------------------------------
# Resource limits


def apply_rlimits(limits: dict, timeout_s: float) -> None:
    mb = 1024 * 1024
    cpu = int(timeout_s) + 2
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["nofile"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# ----------------------------------------------------------------------------------------------
# Seccomp allowlist

ALLOWED = """
read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 lseek close close_range
open openat creat stat fstat lstat newfstatat statx statfs fstatfs access faccessat faccessat2
getdents getdents64 getcwd chdir fchdir mkdir mkdirat rmdir rename renameat renameat2 link
linkat unlink unlinkat symlink symlinkat readlink readlinkat chmod fchmod fchmodat chown fchown
lchown fchownat umask utime utimes utimensat futimesat truncate ftruncate fallocate fadvise64
readahead fsync fdatasync sync syncfs sync_file_range flock sendfile copy_file_range splice tee
dup dup2 dup3 pipe pipe2 fcntl ioctl select pselect6 poll ppoll epoll_create epoll_create1
epoll_ctl epoll_wait epoll_pwait epoll_pwait2 eventfd eventfd2 signalfd signalfd4 timerfd_create
timerfd_settime timerfd_gettime inotify_init inotify_init1 inotify_add_watch inotify_rm_watch
memfd_create getxattr lgetxattr fgetxattr listxattr llistxattr flistxattr
mmap mprotect munmap mremap brk msync mincore madvise mlock mlock2 munlock membarrier
clone fork vfork execve execveat exit exit_group wait4 waitid
getpid getppid gettid getuid geteuid getgid getegid getgroups getresuid getresgid getpgid
getpgrp getsid setsid setpgid set_tid_address set_robust_list get_robust_list futex futex_waitv
rseq arch_prctl prctl sched_yield sched_getaffinity sched_getparam sched_getscheduler
sched_get_priority_max sched_get_priority_min sched_rr_get_interval getpriority setpriority
getrlimit setrlimit prlimit64 getrusage times uname sysinfo getrandom capget getcpu
rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigtimedwait rt_sigsuspend sigaltstack
kill tkill tgkill rt_sigqueueinfo rt_tgsigqueueinfo pidfd_open pidfd_send_signal restart_syscall
alarm pause getitimer setitimer timer_create timer_settime timer_gettime timer_getoverrun
timer_delete clock_gettime clock_getres clock_nanosleep nanosleep gettimeofday time
socket socketpair bind listen accept accept4 connect getsockname getpeername sendto recvfrom
sendmsg recvmsg sendmmsg recvmmsg shutdown setsockopt getsockopt
shmget shmat shmdt shmctl semget semop semtimedop semctl msgget msgsnd msgrcv msgctl
mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr
""".split()
"""Every system call a candidate may make.  Signals and priorities reach only the candidate's own
processes: the kernel checks the uid, and each request has its own."""

# Commands that would make the kernel signal a process of our choosing
DENIED_FCNTL = (8, 10, 15, 1024, 1026)  # F_SETOWN, F_SETSIG, F_SETOWN_EX, F_SETLEASE, F_NOTIFY
DENIED_IOCTL = (0x8901, 0x8902, 0x5412, 0x5410)  # FIOSETOWN, SIOCSPGRP, TIOCSTI, TIOCSPGRP
# clone flags that create namespaces or re-parent the child onto the fork server
DENIED_CLONE_FLAGS = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
                      | 0x20000000 | 0x40000000 | 0x00008000)
_ARCH = {"x86_64": (syscalls.X86_64, 0xC000003E), "aarch64": (syscalls.AARCH64, 0xC00000B7)}

_LD, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL = 0x7FFF0000, 0x80000000


def _errno(code: int) -> int:
    return 0x00050000 | code  # SECCOMP_RET_ERRNO


def seccomp_program(machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions."""
    machine = machine or platform.machine()
    if machine not in _ARCH:
        raise ConfinementError(errno.ENOSYS, f"no seccomp table for architecture {machine}")
    numbers, audit_arch = _ARCH[machine]
    prog = [(_LD, 0, 0, 4), (_JEQ, 1, 0, audit_arch), (_RET, 0, 0, _KILL), (_LD, 0, 0, 0)]
    if machine == "x86_64":  # the x32 ABI shares the arch value: refuse its numbers outright
        prog += [(_JGE, 0, 1, 0x40000000), (_RET, 0, 0, _KILL)]

    def guarded(nr, arg, test, values):
        """Allow syscall `nr` unless its argument `arg` matches: a self-contained block that the
        other numbers skip over (the accumulator still holds the syscall number there)."""
        checks = [(_JSET if test == "set" else _JEQ, 0, 0, v) for v in values]
        body = [(_LD, 0, 0, 16 + 8 * arg)]
        for i, (code, _, _, k) in enumerate(checks):
            body.append((code, len(checks) - i, 0, k))  # match: jump to the deny return
        body += [(_RET, 0, 0, _ALLOW), (_RET, 0, 0, _errno(errno.EPERM))]
        return [(_JEQ, 0, len(body), nr)] + body

    if "clone3" in numbers:
        prog += [(_JEQ, 0, 1, numbers["clone3"]), (_RET, 0, 0, _errno(errno.ENOSYS))]
    prog += guarded(numbers["fcntl"], 1, "eq", DENIED_FCNTL)
    prog += guarded(numbers["ioctl"], 1, "eq", DENIED_IOCTL)
    prog += guarded(numbers["clone"], 0, "set", (DENIED_CLONE_FLAGS,))
    for name in ALLOWED:
        if name in numbers and name not in ("fcntl", "ioctl", "clone"):
            prog += [(_JEQ, 0, 1, numbers[name]), (_RET, 0, 0, _ALLOW)]
    prog.append((_RET, 0, 0, _errno(errno.EPERM)))
    return prog


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def install_seccomp() -> None:
    prog = seccomp_program()
    filters = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), filters)
    prctl(38, 1)  # PR_SET_NO_NEW_PRIVS (Docker's no-new-privileges has set it already)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                           ctypes.c_ulong]
    _check(libc.prctl(22, 2, ctypes.addressof(fprog), 0, 0), "seccomp")  # PR_SET_SECCOMP


# ----------------------------------------------------------------------------------------------
# All of it, in order


CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp",
             "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
# no PYTHONHASHSEED: the candidate's own seed is its fork server's (batch.py), so a fixed one here
# would misstate it


def confine(config: dict) -> None:
    """Turn this freshly forked root process into a confined candidate (see the module doc).

    config: {"uid", "cpu", "limits": {memory_mb, fsize_mb, nproc, nofile, tmpfs_mb},
             "timeout_s"}"""
    uid = config["uid"]
    private_world(uid, config["limits"]["tmpfs_mb"])
    if config.get("cpu") is not None:
        os.sched_setaffinity(0, {config["cpu"]})
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
    become(uid)
    set_dumpable(True)  # its own /proc/self files stay readable to it (other uids still cannot)
    os.chdir("/tmp")
    os.umask(0o022)
    os.environ.clear()
    os.environ.update(CLEAN_ENV)
    apply_rlimits(config["limits"], config["timeout_s"])
    install_seccomp()
