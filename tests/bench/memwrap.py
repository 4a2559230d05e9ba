"""Run a command and record the peak memory of its process tree: memwrap.py PROGRAM [ARGS...]

The peak resident set size the kernel reports (ru_maxrss) for a process also counts
the memory of whatever it was forked from, until it calls exec: measured from a big
parent (the benchmark, ansible-playbook's workers) a small program looks as big as its
parent. This wrapper is started fresh with `python -I -S` (about 9 MiB), forks, execs
PROGRAM in the child, waits for it with wait4() and appends the child's ru_maxrss (KiB;
the largest of the child and the descendants it waited for) to $IBMREG_BENCH_MEMLOG as
one line `program<TAB>script<TAB>maxrss_kib`. stdin, stdout, stderr and the exit status
pass through untouched. It imports nothing beyond os and sys: it adds about one bare
interpreter start-up (-I -S) to every command it wraps.

Ansible modules: ANSIBLE_PYTHON_INTERPRETER points at a shell launcher that runs
`python -I -S memwrap.py <real python> "$@"`; Ansible runs it as
`<interpreter> AnsiballZ_<module>.py`, and AnsiballZ runs the module in that process.
"""

import os
import sys


def main():
    argv = sys.argv[1:]
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    _pid, status, usage = os.wait4(pid, 0)
    script = next((os.path.basename(arg) for arg in argv[1:] if not arg.startswith("-")), "")
    with open(os.environ["IBMREG_BENCH_MEMLOG"], "a", encoding="utf-8") as log:
        log.write("%s\t%s\t%d\n" % (os.path.basename(argv[0]), script, usage.ru_maxrss))
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
