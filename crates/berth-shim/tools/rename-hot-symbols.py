#!/usr/bin/env python3
"""Maps a hot-symbols list onto the functions of a built shim (used by scripts/build-shim).

`rename-hot-symbols.py BINARY LIST` prints LIST with every name the binary does not define
replaced by the binary's functions of the same name up to the hash: Rust's legacy mangling
ends a name in `17h<16 hex>E`, a hash that changes whenever its crate's source does, and
LLVM may add a `.llvm.<n>` suffix; either makes the linker skip an entry
(--symbol-ordering-file wants exact names), so every edit of berth-shim or berth-runtime
would scatter the idle monitor's code again. Names with no counterpart are dropped; the
order is kept.
"""

import re
import subprocess
import sys


def key(name):
    return re.sub(r"17h[0-9a-f]{16}E", "", name.split(".llvm.")[0])


def main():
    binary, listing = sys.argv[1], sys.argv[2]
    nm = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True,
                        check=True).stdout
    defined, by_key = set(), {}
    for line in nm.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "TtWw":
            defined.add(parts[2])
            by_key.setdefault(key(parts[2]), []).append(parts[2])
    out, seen = [], set()
    for name in open(listing).read().split():
        for n in [name] if name in defined else by_key.get(key(name), []):
            if n not in seen:
                seen.add(n)
                out.append(n)
    sys.stdout.write("".join(n + "\n" for n in out))


main()
