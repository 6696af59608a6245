"""Serves one privacyIDEA test instance on 127.0.0.1 and a port the OS picks.

Usage (working directory: the instance's directory, PRIVACYIDEA_CONFIGFILE: its pi.cfg):
    tools/privacyidea-venv/bin/python tests/privacyidea/serve.py

Prints `PORT <n>` on stdout once the socket listens, then serves until stdin closes (the test
process ended or dropped its handle) or it is killed.

Why not `pi-manage run --port P`: it starts no faster (both ~2.2 s, mostly the import), and it needs
a port chosen beforehand, which another process may take between the choice and the bind. Binding
port 0 here has no such race, and exiting on stdin's end leaves no orphan when a test run is killed.
"""

import os
import sys
import threading

from privacyidea.app import create_app
from werkzeug.serving import make_server


def exit_when_stdin_closes() -> None:
    sys.stdin.buffer.read()
    os._exit(0)


def main() -> None:
    app = create_app(config_name="production", silent=True)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"PORT {server.server_port}", flush=True)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
