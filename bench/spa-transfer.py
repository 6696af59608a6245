#!/usr/bin/env python3
"""What a real browser transfers for the SPA, and how long silent SSO takes, measured in
headless Chromium (Debian's chromium and chromedriver; WebDriver spoken over HTTP as in
bench/browser-session.py, standard library only). Run by bench/spa-transfer.sh, which starts the
demo provider and a bridge; usable against any bridge whose provider signs alice in:

    bench/spa-transfer.py BRIDGE_URL [ROUNDS=5]

With BENCH_IDP_HOST=localhost, bench/spa-transfer.sh puts the provider on the bridge's site
(as login.example.org is to app.example.org): Chromium then keeps one renderer through the
silent sign-in's redirects instead of starting another after the trip through a foreign site.

1. Bytes: a fresh profile opens BRIDGE_URL/ (silent SSO finds no provider session: the login
   page), then reloads it, then opens it again. For each, Chromium's own network log
   (`goog:loggingPrefs` performance: `Network.responseReceived` and `Network.loadingFinished`'s
   `encodedDataLength`) gives every response's bytes on the wire; the body bytes are those minus
   its header bytes; an answer from the cache counts 0. Redirects count their headers.
2. Time (ROUNDS each, medians): signed in, the time from a navigation to /api-demo to the end
   of its first /api/ response, with the bridge session open, and with only the provider's SSO
   session (the bridge's cookie deleted before each navigation: silent SSO signs in first). Each
   navigation starts two ways, each measured:
   - in a new tab (as a user opens a bookmark or a link): both cases get a renderer that has
     not run the SPA, so both compile its wasm;
   - in the same tab, after about:blank: the open-session case then keeps the renderer that
     showed the UI the round before, with the wasm it compiled, while silent SSO's trip through
     the provider's site ends in a new renderer, which Chromium starts (about 40 ms here) after
     the page's answer has come.
   Clock: the wall time before the WebDriver navigation to the Resource Timing `responseEnd`.
Exits non-zero if a step does not show what a user would see."""
import importlib.util, json, os, statistics, sys, time
from urllib.parse import urlsplit

WAIT = 30


# The WebDriver client of bench/browser-session.py, with the network log this bench reads.
_spec = importlib.util.spec_from_file_location(
    "browser_session", os.path.join(os.path.dirname(__file__), "browser-session.py"))
browser_session = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browser_session)


class Driver(browser_session.Driver):
    def __init__(self):
        super().__init__(logging_prefs={"performance": "ALL"})

    def script(self, source):
        return self.s("POST", "/execute/sync", {"script": source, "args": []})

    def network_log(self):
        """The network events since the last call (reading the log empties it)."""
        entries = self.s("POST", "/se/log", {"type": "performance"})
        return [json.loads(e["message"])["message"] for e in entries]

    def settled_log(self, quiet=0.5):
        """The network events until none has come for `quiet` seconds: the SPA's own calls
        (`/auth/session`, `/auth/upstreams`) may end after the page shows."""
        events, last = [], time.monotonic()
        while time.monotonic() - last < quiet:
            more = self.network_log()
            if more:
                events += more
                last = time.monotonic()
            else:
                time.sleep(0.05)
        return events

    def quit(self):
        try:
            self.s("DELETE", "")
        finally:
            os.killpg(self.proc.pid, 15)
            self.profile.cleanup()


def transfers(events):
    """One row per response: url, status, bytes on the wire, body bytes, whether cached."""
    responses, finished, from_cache, rows = {}, {}, set(), []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Network.requestServedFromCache":
            from_cache.add(p["requestId"])
        elif method == "Network.requestWillBeSent" and p.get("redirectResponse"):
            r = p["redirectResponse"]
            n = int(r.get("encodedDataLength", 0))
            rows.append((r["url"], r["status"], n, 0, False))
        elif method == "Network.responseReceived":
            responses[p["requestId"]] = p["response"]
        elif method == "Network.loadingFinished":
            finished[p["requestId"]] = int(p.get("encodedDataLength", 0))
    for rid, r in responses.items():
        cached = rid in from_cache or bool(r.get("fromDiskCache") or r.get("fromPrefetchCache")
                                           or r.get("fromServiceWorker"))
        wire = 0 if cached else finished.get(rid, 0)
        body = 0 if cached else max(wire - int(r.get("encodedDataLength", 0)), 0)
        rows.append((r["url"], r["status"], wire, body, cached))
    return rows


def report(title, rows, origin):
    print(f"\n{title}")
    print(f"  {'status':>6} {'wire':>8} {'body':>8}  url")
    total_wire = total_body = 0
    for url, status, wire, body, cached in rows:
        if not url.startswith("http"):
            continue
        mine = url.startswith(origin)
        if mine:
            total_wire += wire
            total_body += body
        note = " (cache)" if cached else ("" if mine else " (provider)")
        print(f"  {status:>6} {wire:>8} {body:>8}  {url}{note}")
    print(f"  from the bridge: {total_body} B of bodies, {total_wire} B on the wire with headers")
    return total_body, total_wire


def first_api_ms(d, started):
    """Milliseconds from `started` (wall clock) to the end of the page's first /api/ response."""
    deadline = time.monotonic() + WAIT
    while True:
        end = d.script("""
            const e = performance.getEntriesByType('resource')
              .filter((e) => new URL(e.name).pathname.startsWith('/api/') && e.responseEnd > 0)
              .sort((a, b) => a.responseEnd - b.responseEnd)[0];
            return e ? performance.timeOrigin + e.responseEnd : null;""")
        if end is not None:
            return end - started * 1000
        if time.monotonic() > deadline:
            sys.exit(f"bench: no /api/ response at {d.s('GET', '/url')}")
        time.sleep(0.05)


def phases(events):
    """(ms from the navigation's first request to its final document's answer, ms from there
    to the end of the first /api/ response), from Chromium's network log."""
    start = doc = api = None
    urls = {}
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Network.requestWillBeSent":
            urls[p["requestId"]] = p["request"]["url"]
            if p.get("type") == "Document" and start is None:
                start = p["timestamp"]
        elif method == "Network.responseReceived" and p.get("type") == "Document":
            doc = p["timestamp"]
        elif method == "Network.loadingFinished" and api is None:
            if urlsplit(urls.get(p["requestId"], "")).path.startswith("/api/"):
                api = p["timestamp"]
    if None in (start, doc, api):
        return None
    return (doc - start) * 1000, (api - doc) * 1000


def fresh_start(d, start):
    """Where a navigation starts: a new tab (the old one closed), or about:blank in this one."""
    if start == "new tab":
        handle = d.s("POST", "/window/new", {"type": "tab"})["handle"]
        d.s("DELETE", "/window")
        d.s("POST", "/window", {"handle": handle})
    else:
        d.goto("about:blank")
    d.network_log()


def silent_sso_ratio(d, base, rounds, start):
    """Medians of ROUNDS navigations to /api-demo, each started as `start` says: with the
    bridge session open, then with only the provider's session. Prints them; returns their
    ratio."""
    session, sso = "bridge session open", "SSO session only"
    times, phase_rows = {session: [], sso: []}, {session: [], sso: []}
    for _ in range(rounds):
        for kind in (session, sso):
            if kind == sso:
                # Only the bridge's session cookie goes, the provider's stays: silent SSO.
                for name in ("lb_session", "__Host-lb_session"):
                    d.s("DELETE", f"/cookie/{name}")
            fresh_start(d, start)
            started = time.time()
            d.goto(f"{base}/api-demo")
            times[kind].append(first_api_ms(d, started))
            d.wait_text("#api-demo-user", "alice")
            phase_rows[kind].append(phases(d.network_log()))
        if not urlsplit(d.s("GET", "/url")).path == "/api-demo":
            sys.exit("bench: silent SSO did not come back to /api-demo")
    a, b = statistics.median(times[session]), statistics.median(times[sso])
    print(f"\nnavigation to /api-demo (starting in: {start}) → end of its first /api/ response "
          "(ms, each round)")
    for kind in (session, sso):
        print(f"  {kind + ':':<21}" + ", ".join(f"{x:.0f}" for x in times[kind]))
    print(f"  medians {a:.0f} ms and {b:.0f} ms: ratio {b / a:.2f} (target ≤ 1.3)")
    for kind in (session, sso):
        rows = [r for r in phase_rows[kind] if r]
        if rows:
            print(f"  {kind}: median {statistics.median(r[0] for r in rows):.0f} ms until the "
                  f"page's answer (redirects included), then "
                  f"{statistics.median(r[1] for r in rows):.0f} ms to the first /api/ answer")
    return b / a


def main():
    base = sys.argv[1].rstrip("/")
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
    d = Driver()
    try:
        d.network_log()
        d.goto(f"{base}/")
        d.find("#sso-login")
        first = report("first load (fresh profile, no provider session)",
                       transfers(d.settled_log()), origin)
        d.s("POST", "/refresh", {})
        d.find("#sso-login")
        reload = report("reload", transfers(d.settled_log()), origin)
        d.goto(f"{base}/")
        d.find("#sso-login")
        again = report("opened again", transfers(d.settled_log()), origin)

        # Signed in through the provider's form: both sessions open.
        d.click("#sso-login")
        d.fill("#username", "alice")
        d.fill("#password", "wonderland")
        d.click("#sign-in")
        d.wait_text("#user-username", "alice")
        ratios = {}
        for start in ("new tab", "same tab after about:blank"):
            ratios[start] = silent_sso_ratio(d, base, rounds, start)
        print(f"\nsummary: first load {first[0]} B bodies ({first[1]} B with headers); "
              f"reload {reload[0]} B ({reload[1]} B); opened again {again[0]} B ({again[1]} B); "
              "silent SSO / open session "
              + ", ".join(f"{ratio:.2f} ({start})" for start, ratio in ratios.items()))
    finally:
        d.quit()


if __name__ == "__main__":
    main()
