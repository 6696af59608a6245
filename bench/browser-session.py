#!/usr/bin/env python3
"""One real browser session for the benches: headless Chromium (Debian's chromium and
chromedriver) opens the bridge's UI, signs in as alice at the demo provider's form, and opens
the API demo page, so the bridge has served a whole SPA session (assets, code flow,
/auth/session, Bearer API calls). WebDriver spoken directly over HTTP (standard library only).

    bench/browser-session.py BRIDGE_URL [PAGES=5]

PAGES: how many times the API demo page is opened after signing in. Exits non-zero if any
step does not show what a user would see."""
import json, os, socket, subprocess, sys, tempfile, time, urllib.request

WAIT = 30


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Driver:
    def __init__(self, logging_prefs=None):
        """`logging_prefs`: Chromium's `goog:loggingPrefs` (e.g. `{"performance": "ALL"}` for
        the network log bench/spa-transfer.py reads)."""
        self.port = free_port()
        self.proc = subprocess.Popen(["chromedriver", f"--port={self.port}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        for line in self.proc.stdout:
            if b"started successfully" in line:
                break
        else:
            sys.exit("bench: chromedriver did not start")
        self.profile = tempfile.TemporaryDirectory()
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", f"--user-data-dir={self.profile.name}"]
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium", "args": args}}}}
        if logging_prefs:
            caps["capabilities"]["alwaysMatch"]["goog:loggingPrefs"] = logging_prefs
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)["value"]

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def find(self, css):
        """The element's id once it exists (polls: the SPA renders asynchronously)."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                el = self.s("POST", "/element", {"using": "css selector", "value": css})
                return next(iter(el.values()))
            except urllib.error.HTTPError:
                if time.monotonic() > deadline:
                    url = self.s("GET", "/url")
                    sys.exit(f"bench: {css} never appeared (at {url})")
                time.sleep(0.1)

    def wait_text(self, css, expected):
        deadline = time.monotonic() + WAIT
        while True:
            try:
                text = self.s("GET", f"/element/{self.find(css)}/text")
                if expected in text:
                    return
            except urllib.error.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"bench: {css} never showed {expected!r}")
            time.sleep(0.1)

    def click(self, css):
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def fill(self, css, value):
        self.s("POST", f"/element/{self.find(css)}/value", {"text": value})

    def goto(self, url):
        self.s("POST", "/url", {"url": url})

    def quit(self):
        try:
            self.s("DELETE", "")
        finally:
            os.killpg(self.proc.pid, 15)
            self.profile.cleanup()


def main():
    base = sys.argv[1].rstrip("/")
    pages = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    d = Driver()
    try:
        d.goto(f"{base}/")
        d.click("#sso-login")
        d.fill("#username", "alice")
        d.fill("#password", "wonderland")
        d.click("#sign-in")
        d.wait_text("#user-username", "alice")
        for _ in range(pages):
            d.goto(f"{base}/api-demo?tab=calls")
            d.wait_text("#api-demo-user", "alice")
    finally:
        d.quit()


if __name__ == "__main__":
    main()
