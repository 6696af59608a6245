#!/usr/bin/env python3
"""Checks an strace log of the bridge against the unit's SystemCallFilter= and
MemoryDenyWriteExecute= (scripts/test-deb.sh; no systemd runs here to enforce them).

usage: check_sandbox.py STRACE_LOG

Only what follows the successful execve of /usr/bin/login-bridge counts (before it, the test's
own unshare/setpriv set the process up as systemd would). Every system call the bridge made
must be in @system-service minus @privileged and @resources (expanded by
`systemd-analyze syscall-filter`), and no mapping may be asked for writable and executable at
once. Prints what it found; exits 1 on a violation.
"""
import re
import subprocess
import sys


def expand(group, seen=None):
    seen = set() if seen is None else seen
    if group in seen:
        return set()
    seen.add(group)
    out = subprocess.run(["systemd-analyze", "syscall-filter", group],
                         check=True, capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        names |= expand(line, seen) if line.startswith("@") else {line}
    return names


allowed = expand("@system-service") - expand("@privileged") - expand("@resources")
started = False
used, wx = {}, []
call = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)")
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    if not started:
        started = 'execve("/usr/bin/login-bridge"' in line and line.rstrip().endswith("= 0")
        continue
    m = call.match(line)
    if not m or "+++" in line or "---" in line:
        continue
    used[m.group(1)] = used.get(m.group(1), 0) + 1
    if m.group(1) in ("mmap", "mprotect", "pkey_mprotect") and "PROT_WRITE" in line and "PROT_EXEC" in line:
        wx.append(line.strip())
if not started:
    sys.exit("check_sandbox: no execve of /usr/bin/login-bridge in the trace")
denied = sorted(set(used) - allowed)
print(f"system calls made by the bridge: {len(used)} distinct, {sum(used.values())} in all")
print(f"outside SystemCallFilter=@system-service ~@privileged @resources: {denied or 'none'}")
print(f"writable and executable mappings (MemoryDenyWriteExecute=): {len(wx)}")
for line in wx[:5]:
    print(f"  {line}")
sys.exit(1 if denied or wx else 0)
