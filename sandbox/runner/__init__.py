"""The in-container runner: judges a batch of untrusted candidate programs against their tests.

Standard library only.  The package is mounted read-only into the sandbox container at
/opt/autodidact/runner and started as root by `docker exec`; the host imports only its pure parts
(the codec and the test preparation) for tests.

    batch.py        the runner: worker slots, deadlines, one verdict line per request
    judge.py        the trusted judge: runs the tests against proxies of the candidate's objects
    program.py      the `programs` mode: a program confined like a candidate, its printed output
    candidate.py    the fork server and the confined candidate process that runs the program
    confinement.py  namespaces, identities, rlimits and the seccomp allowlist of a candidate
    protocol.py     judge <-> candidate messages, nested calls both ways
    codec.py        the values that cross between them
    syscalls.py     syscall numbers (generated)

Who is who inside the container:

    init (root, PID 1, non-dumpable)
    runner (root, non-dumpable, subreaper)      one per batch
      ├─ fork server of slot i (root, non-dumpable, holds no request data)
      │    └─ candidate (uid 20000+i, private /tmp, /dev/shm, IPC and network namespaces,
      │                  CPU i, rlimits, seccomp allowlist) and whatever it starts
      └─ judge (uid 10000+i, non-dumpable): executes the tests and the problem's context
"""
