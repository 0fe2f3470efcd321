"""Headless Debian Chromium driven over the Chrome DevTools Protocol through a pipe (no ports, no downloads): the
explorer pages' browser tests and ``fra bench-pages`` run the pages in it."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from fra.errors import FRAError

CHROMIUM = os.environ.get("FRA_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--remote-debugging-pipe"]


class CDPError(RuntimeError):
    pass


def chromium(exe: str = CHROMIUM) -> str:
    """``exe``, or ``FRAError`` naming the fix when it is missing."""
    if not Path(exe).exists():
        raise FRAError(f"Chromium is missing at {exe}: run `bash scripts/setup.sh` as root (installs Debian's "
                       "`chromium`) or `apt-get install -y chromium`; FRA_CHROMIUM may point at another binary")
    return exe


class Browser:
    """One Chromium process; ``page(url)`` opens a tab."""

    def __init__(self, exe: str = CHROMIUM):
        exe = chromium(exe)
        self.profile = tempfile.mkdtemp(prefix="fra-chromium-")
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def fds() -> None:  # Chromium reads commands on fd 3 and writes replies on fd 4
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        self.call("Browser.getVersion")

    def _read(self) -> dict:
        while b"\0" not in self._buf:
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise CDPError("Chromium closed the DevTools pipe (crashed or exited)")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def page(self, url: str, width: int = 1440, height: int = 900) -> "Page":
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = Page(self, session)
        page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        page.call("Runtime.enable")
        page.goto(url)
        return page

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.proc.wait(timeout=10)
        except (CDPError, OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        for fd in (self._r, self._w):
            os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session

    def call(self, method: str, **params) -> dict:
        return self.browser.call(method, self.session, **params)

    def goto(self, url: str, timeout: float = 30) -> None:
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && !!window.fraReady", timeout)

    def js(self, expr: str, await_promise: bool = False):
        """Evaluate ``expr`` in the page and return its JSON value; page exceptions raise."""
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CDPError(f"page error: {d.get('exception', {}).get('description') or d.get('text')}")
        return r["result"].get("value")

    def wait(self, expr: str, timeout: float = 10) -> None:
        end = time.time() + timeout
        while True:
            try:
                if self.js(expr):
                    return
            except CDPError:
                pass
            if time.time() > end:
                raise CDPError(f"timed out waiting for `{expr}`; page errors: {self.errors()}")
            time.sleep(0.05)

    def errors(self) -> list[str]:
        return [e["params"]["exceptionDetails"].get("exception", {}).get("description", "")
                for e in self.browser.events if e.get("method") == "Runtime.exceptionThrown"]

    def click(self, selector: str) -> float:
        """A real mouse click at the centre of the first element matching ``selector``.

        Returns milliseconds from the click until the next frame was painted after the handlers ran.
        """
        box = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
                      " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
                      " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        if box is None:
            raise CDPError(f"no element matches `{selector}`")
        self.call("Page.bringToFront")  # a tab in the background paints no frames
        self.js("window.__t0 = performance.now()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
        return self.js(
            "new Promise(r => requestAnimationFrame(() => setTimeout(() => r(performance.now() - window.__t0))))",
            await_promise=True)

    def text(self, selector: str) -> str:
        return self.js(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''")

    def screenshot(self, path: str | Path) -> Path:
        h = self.js("document.documentElement.scrollHeight")
        w = self.js("document.documentElement.scrollWidth")
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": w, "height": h, "scale": 1})["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)
