#!/usr/bin/env python3
"""Takes the UI's screenshots (called by scripts/screenshots.sh, which starts the bridge):
the sign-in page (and, on a phone, with a wrong password's message), then alice signed in through the demo provider, her home page and the API
demo page, each at 1280 px and at 360 px wide. WebDriver over HTTP as in
bench/browser-session.py (its Driver is reused); the width is set with Chrome's device metrics
(a window cannot be made that narrow).

    scripts/screenshots.py BRIDGE_URL OUT_DIR"""
import base64, importlib.util, os, sys

spec = importlib.util.spec_from_file_location(
    "browser_session", os.path.join(os.path.dirname(__file__), "..", "bench", "browser-session.py"))
bs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bs)

SIZES = {"desktop": (1280, 800, False), "phone": (360, 780, True)}


def set_size(d, name):
    width, height, mobile = SIZES[name]
    d.s("POST", "/goog/cdp/execute", {"cmd": "Emulation.setDeviceMetricsOverride", "params": {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}})


def shoot(d, out, name):
    # Whatever had focus (a clicked button) would show its ring in the picture.
    d.s("POST", "/execute/sync", {"script": "document.activeElement && document.activeElement.blur()", "args": []})
    png = base64.b64decode(d.s("GET", "/screenshot"))
    with open(os.path.join(out, f"{name}.png"), "wb") as f:
        f.write(png)
    print(f"screenshots: {name}.png")


def main():
    base, out = sys.argv[1].rstrip("/"), sys.argv[2]
    d = bs.Driver()
    try:
        for size in SIZES:
            set_size(d, size)
            d.goto(f"{base}/login")
            d.find("#local-username")
            shoot(d, out, f"sign-in-{size}")
        # The card with a message: a wrong password for the demo's local account.
        d.fill("#local-username", "admin")
        d.fill("#local-password", "not the password")
        d.click("#local-submit")
        d.wait_text("#login-message", "Wrong username or password")
        shoot(d, out, "sign-in-error-phone")
        set_size(d, "desktop")
        d.click("#sso-login")
        d.fill("#username", "alice")
        d.fill("#password", "wonderland")
        d.click("#sign-in")
        for size in SIZES:
            set_size(d, size)
            d.goto(f"{base}/")
            d.wait_text("#user-username", "alice")
            shoot(d, out, f"home-{size}")
            d.goto(f"{base}/api-demo")
            d.wait_text("#api-demo-user", "alice")
            d.find("#api-calls")
            shoot(d, out, f"api-demo-{size}")
    finally:
        d.quit()


if __name__ == "__main__":
    main()
