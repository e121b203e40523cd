#!/usr/bin/env python3
"""Records the functions an idle berth-shim monitor runs, for the linker's symbol order.

Installed as `berth-shim` next to a copy of berthd (see scripts/shim-hot-symbols), with the
real static shim beside it as `berth-shim.real`: it runs the real shim under ptrace, lets the
create phase run freely, and from the re-exec into monitor mode single-steps it up to its
$BERTH_SHIM_TRACE_POLLS-th blocking poll(2) (default 1; the polls in between run, so a
container that writes output brings the log path in), recording every instruction address. Then it detaches, lets the
shim run on, and waits for it like berthd would. The addresses, in first-execution order,
go to $BERTH_SHIM_TRACE_OUT (one hex address a line).
"""

import ctypes
import os
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

PTRACE_TRACEME, PTRACE_PEEKTEXT, PTRACE_CONT = 0, 1, 7
PTRACE_SINGLESTEP, PTRACE_GETREGS, PTRACE_DETACH = 9, 12, 17
PTRACE_SETOPTIONS = 0x4200
PTRACE_O_TRACEEXEC = 0x10
PTRACE_EVENT_EXEC = 4
SYS_POLL, SYS_PPOLL = 7, 271


class Regs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags "
        "rsp ss fs_base gs_base ds es fs gs").split()]


def ptrace(req, pid, addr=0, data=0):
    r = libc.ptrace(req, pid, ctypes.c_void_p(addr), ctypes.c_void_p(data))
    if r == -1 and ctypes.get_errno() != 0 and req != PTRACE_PEEKTEXT:
        raise OSError(ctypes.get_errno(), f"ptrace {req}")
    return r


def main():
    real = os.path.join(os.path.dirname(os.path.abspath(__file__)), "berth-shim.real")
    out = os.environ.get("BERTH_SHIM_TRACE_OUT", "/tmp/berth-shim-trace.txt")
    pid = os.fork()
    if pid == 0:
        ptrace(PTRACE_TRACEME, 0)
        os.execv(real, ["berth-shim"] + sys.argv[1:])
    _, st = os.waitpid(pid, 0)  # stopped at the first exec
    ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACEEXEC)
    ptrace(PTRACE_CONT, pid)
    while True:
        _, st = os.waitpid(pid, 0)
        if os.WIFEXITED(st) or os.WIFSIGNALED(st):
            sys.exit(1)  # failed before monitor mode
        if os.WIFSTOPPED(st) and (st >> 16) == PTRACE_EVENT_EXEC:
            break
        sig = os.WSTOPSIG(st) if os.WIFSTOPPED(st) else 0
        ptrace(PTRACE_CONT, pid, 0, 0 if sig == 5 else sig)
    regs = Regs()
    seen = {}
    polls = 0
    max_polls = int(os.environ.get("BERTH_SHIM_TRACE_POLLS", "1"))
    while True:
        ptrace(PTRACE_GETREGS, pid, 0, ctypes.addressof(regs))
        rip = regs.rip
        if rip not in seen:
            seen[rip] = len(seen)
        ctypes.set_errno(0)
        word = libc.ptrace(PTRACE_PEEKTEXT, pid, ctypes.c_void_p(rip), None)
        insn = struct.pack("<q", word)[:2]
        # the loop's poll blocks (no timeout); std's start-up polls fds 0-2 with none
        blocks = (regs.rax == SYS_POLL and regs.rdx == 2**64 - 1) or (
            regs.rax == SYS_PPOLL and regs.rdx == 0)
        if insn == b"\x0f\x05" and blocks:
            polls += 1
            if polls >= max_polls:
                break
        ptrace(PTRACE_SINGLESTEP, pid)
        _, st = os.waitpid(pid, 0)
        if not os.WIFSTOPPED(st):
            break
    with open(out, "w") as f:
        for a in sorted(seen, key=seen.get):
            f.write(f"{a:x}\n")
    ptrace(PTRACE_DETACH, pid)
    _, st = os.waitpid(pid, 0)
    sys.exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 1)


main()
