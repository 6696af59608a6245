#!/usr/bin/env python3
"""Stands in for systemd's notify socket in scripts/test-deb.sh.

usage: notify_socket.py SOCKET_PATH READYZ_URL

Binds a datagram socket at SOCKET_PATH (what NOTIFY_SOCKET names), writable by anyone like
/run/systemd/notify, and prints every line the service sends (`READY=1`, `STATUS=...`). The
moment a datagram with READY=1 arrives it asks READYZ_URL itself and prints
`READYZ_AT_READY <status>`: readiness never goes back once reached, so 200 there shows the
bridge did not say READY before /readyz would. Exits after STOPPING=1.
"""
import os
import socket
import sys
import urllib.error
import urllib.request

path, readyz = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o666)
print("LISTENING", flush=True)
while True:
    lines = sock.recv(4096).decode().splitlines()
    for line in lines:
        print(line, flush=True)
    if "READY=1" in lines:
        try:
            # Straight to the bridge, whatever proxy the environment names.
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            status = opener.open(readyz, timeout=5).status
        except urllib.error.HTTPError as e:
            status = e.code
        except OSError as e:
            status = f"unreachable ({e})"
        print(f"READYZ_AT_READY {status}", flush=True)
    if "STOPPING=1" in lines:
        break
