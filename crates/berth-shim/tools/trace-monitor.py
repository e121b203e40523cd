#!/usr/bin/env python3
"""Records the functions a berth-shim monitor runs, for the linker's symbol order.

Installed as `berth-shim` next to a copy of berthd (see scripts/shim-hot-symbols), with the
real static (non-PIE) shim beside it as `berth-shim.real`: it runs the real shim under
ptrace and lets the create phase run freely. At the re-exec into monitor mode, if the file
$BERTH_SHIM_TRACE_MODE says `step N`, it single-steps the monitor up to its N-th blocking
poll(2) recording every instruction address, then detaches. Otherwise it puts a breakpoint
on the first byte of every function (from `nm`), and records each function the first time
it runs (then restores its byte), in the monitor and in the processes it clones for an
exec until they exec. When the file $BERTH_SHIM_TRACE_STOP-<container id> appears it
restores every remaining byte, detaches, and writes the functions' addresses in first-run
order to $BERTH_SHIM_TRACE_OUT-<container id> (one hex address a line); then it waits for
the shim like berthd would.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

PTRACE_TRACEME, PTRACE_PEEKTEXT, PTRACE_POKETEXT, PTRACE_CONT = 0, 1, 4, 7
PTRACE_GETREGS, PTRACE_SETREGS, PTRACE_DETACH = 12, 13, 17
PTRACE_SETOPTIONS = 0x4200
PTRACE_O_TRACEFORK, PTRACE_O_TRACEVFORK, PTRACE_O_TRACECLONE = 0x2, 0x4, 0x8
PTRACE_O_TRACEEXEC = 0x10
PTRACE_EVENT_EXEC = 4
WALL = 0x40000000


class Regs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags "
        "rsp ss fs_base gs_base ds es fs gs").split()]


def ptrace(req, pid, addr=0, data=0):
    ctypes.set_errno(0)
    r = libc.ptrace(req, pid, ctypes.c_void_p(addr), ctypes.c_void_p(data))
    if r == -1 and ctypes.get_errno() != 0:
        raise OSError(ctypes.get_errno(), f"ptrace {req} pid {pid}")
    return r


def set_byte(pid, addr, b):
    word = ptrace(PTRACE_PEEKTEXT, pid, addr) & 0xFFFFFFFFFFFFFFFF
    old = word & 0xFF
    word = (word & ~0xFF) | b
    if word >= 1 << 63:
        word -= 1 << 64
    ptrace(PTRACE_POKETEXT, pid, addr, word)
    return old


def parent_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def functions(binary):
    out = set()
    nm = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True,
                        check=True).stdout
    for line in nm.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "TtWw":
            out.add(int(parts[0], 16))
    return sorted(out)


SYS_POLL, SYS_PPOLL = 7, 271


def single_step(pid, max_polls):
    """Steps the monitor up to its max_polls-th blocking poll; addresses in first-run order."""
    regs = Regs()
    seen = {}
    polls = 0
    while True:
        ptrace(PTRACE_GETREGS, pid, 0, ctypes.addressof(regs))
        rip = regs.rip
        seen.setdefault(rip, len(seen))
        word = ptrace(PTRACE_PEEKTEXT, pid, rip) & 0xFFFFFFFFFFFFFFFF
        # the loop's poll blocks (no timeout); std's start-up polls fds 0-2 with none
        blocks = (regs.rax == SYS_POLL and regs.rdx == 2**64 - 1) or (
            regs.rax == SYS_PPOLL and regs.rdx == 0)
        if word & 0xFFFF == 0x050F and blocks:
            polls += 1
            if polls >= max_polls:
                break
        ptrace(9, pid)  # PTRACE_SINGLESTEP
        _, st = os.waitpid(pid, 0)
        if not os.WIFSTOPPED(st):
            break
    ptrace(PTRACE_DETACH, pid)
    return sorted(seen, key=seen.get)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    real = os.path.join(here, "berth-shim.real")
    cid = sys.argv[3] if len(sys.argv) > 3 else "x"
    out = os.environ.get("BERTH_SHIM_TRACE_OUT", "/tmp/berth-shim-trace") + "-" + cid
    stop = os.environ.get("BERTH_SHIM_TRACE_STOP", "/tmp/berth-shim-trace.stop") + "-" + cid
    shim = os.fork()
    if shim == 0:
        ptrace(PTRACE_TRACEME, 0)
        os.execv(real, ["berth-shim"] + sys.argv[1:])
    os.waitpid(shim, 0)  # stopped at its first exec
    ptrace(PTRACE_SETOPTIONS, shim, 0, PTRACE_O_TRACEEXEC)
    ptrace(PTRACE_CONT, shim)
    while True:
        _, st = os.waitpid(shim, 0)
        if os.WIFEXITED(st) or os.WIFSIGNALED(st):
            sys.exit(1)  # failed before monitor mode
        if os.WIFSTOPPED(st) and (st >> 16) == PTRACE_EVENT_EXEC:
            break
        sig = os.WSTOPSIG(st) if os.WIFSTOPPED(st) else 0
        ptrace(PTRACE_CONT, shim, 0, 0 if sig == signal.SIGTRAP else sig)

    mode_file = os.environ.get("BERTH_SHIM_TRACE_MODE", "")
    mode = open(mode_file).read().split() if mode_file and os.path.exists(mode_file) else []
    if mode and mode[0] == "step":
        # every instruction, through the first polls (start-up, the loop, output into the
        # log): exact, but too slow for an exec
        addrs = single_step(shim, int(mode[1]) if len(mode) > 1 else 1)
        with open(out + ".tmp", "w") as f:
            f.write("".join(f"{a:x}\n" for a in addrs))
        os.rename(out + ".tmp", out)
        _, st = os.waitpid(shim, 0)
        sys.exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 1)

    # monitor mode: a breakpoint on every function, in the monitor and in its clones
    ptrace(PTRACE_SETOPTIONS, shim, 0, PTRACE_O_TRACEEXEC | PTRACE_O_TRACECLONE
           | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK)
    saved = {}  # addr -> original byte
    for a in functions(real):
        saved[a] = set_byte(shim, a, 0xCC)
    armed = {shim: set(saved)}  # pid -> addresses still holding a breakpoint
    order = {}
    regs = Regs()
    ptrace(PTRACE_CONT, shim)
    stopping = False
    while True:
        if not stopping and os.path.exists(stop):
            stopping = True
            os.kill(shim, signal.SIGSTOP)
        try:
            pid, st = os.waitpid(-1, WALL | (0 if stopping else os.WNOHANG))
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.005)
            continue
        if os.WIFEXITED(st) or os.WIFSIGNALED(st):
            armed.pop(pid, None)
            if pid == shim:
                break
            continue
        sig = os.WSTOPSIG(st)
        event = st >> 16
        if pid not in armed:
            # a new clone (its first stop can come before its parent's event): a copy of
            # its parent's memory, made while the parent waits in that event
            armed[pid] = set(armed.get(parent_of(pid), armed.get(shim, ())))
        if event in (1, 2, 3):  # fork, vfork, clone: the child starts stopped, armed
            child = ctypes.c_ulong()
            libc.ptrace(0x4201, pid, None, ctypes.byref(child))  # PTRACE_GETEVENTMSG
            armed.setdefault(child.value, set(armed.get(pid, ())))
            ptrace(PTRACE_CONT, pid)
            continue
        if event == PTRACE_EVENT_EXEC:  # a clone became the exec'd process: let it go
            armed.pop(pid, None)
            ptrace(PTRACE_DETACH, pid)
            continue
        if sig == signal.SIGTRAP and pid in armed:
            ptrace(PTRACE_GETREGS, pid, 0, ctypes.addressof(regs))
            a = regs.rip - 1
            if a in armed[pid]:
                order.setdefault(a, len(order))
                set_byte(pid, a, saved[a])
                armed[pid].discard(a)
                regs.rip = a
                ptrace(PTRACE_SETREGS, pid, 0, ctypes.addressof(regs))
                ptrace(PTRACE_CONT, pid)
                continue
        if stopping and pid == shim and sig == signal.SIGSTOP:
            for a in armed.pop(shim, ()):
                set_byte(shim, a, saved[a])
            ptrace(PTRACE_DETACH, shim)
            break
        if sig == signal.SIGSTOP and pid != shim:
            ptrace(PTRACE_CONT, pid)  # a new clone's first stop
            continue
        ptrace(PTRACE_CONT, pid, 0, sig)
    with open(out + ".tmp", "w") as f:
        for a in sorted(order, key=order.get):
            f.write(f"{a:x}\n")
    os.rename(out + ".tmp", out)
    _, st = os.waitpid(shim, 0)
    sys.exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 1)


main()
