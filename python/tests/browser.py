"""A headless Chromium driven over the DevTools protocol on a pipe (no Python package needed).

Chromium started with ``--remote-debugging-pipe`` reads JSON commands, each ended by a NUL byte, on file descriptor
3 and writes replies and events the same way on descriptor 4. ``Browser.page()`` attaches to one tab with the
Runtime, Log, Network and Page domains enabled, so a test sees every console message, exception and request.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium():
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    pass


class Browser:
    """A Chromium process; use as a context manager."""

    def __init__(self, *, executable=None, width=1280, height=900, timeout=60.0):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError("chromium not found (apt-get install -y chromium)")
        self.width, self.height, self.timeout = width, height, timeout
        self._next_id = 0
        self._buffer = b""
        self.events = []

    def __enter__(self):
        self._profile = tempfile.mkdtemp(prefix="qkcat-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # Descriptors 3 and 4 of the child; copied to free descriptors above 10 first so that the child's dup2
        # cannot clobber one with the other (a fixed number could be one of the pipes themselves).
        high_read = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
        high_write = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
        os.close(to_browser_read)
        os.close(from_browser_write)

        def wire():
            os.dup2(high_read, 3)
            os.dup2(high_write, 4)

        arguments = [
            self.executable, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
            "--force-device-scale-factor=1", "--allow-file-access-from-files",
            f"--user-data-dir={self._profile}", f"--window-size={self.width},{self.height}", "about:blank",
        ]
        self._process = subprocess.Popen(arguments, preexec_fn=wire, close_fds=False,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(high_read)
        os.close(high_write)
        return self

    def __exit__(self, *exc):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self._profile, ignore_errors=True)

    # Protocol

    def _read_message(self, deadline):
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("timed out waiting for chromium")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError("chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method, params=None, session=None):
        self._next_id += 1
        ident = self._next_id
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == ident:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, method, session=None, timeout=None):
        """The first event `method` (already received or arriving before the timeout)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for event in self.events:
                if event["method"] == method and (session is None or event.get("sessionId") == session):
                    self.events.remove(event)
                    return event
            self.events.append(self._read_message(deadline))

    def page(self):
        targets = self.send("Target.getTargets")["targetInfos"]
        target = next(t["targetId"] for t in targets if t["type"] == "page")
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        return Page(self, session)


class Page:
    """One tab: navigation, evaluation, screenshots, and what it logged and requested."""

    def __init__(self, browser, session):
        self.browser, self.session = browser, session
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": browser.width, "height": browser.height, "deviceScaleFactor": 1, "mobile": False})

    def send(self, method, params=None):
        return self.browser.send(method, params, session=self.session)

    def open(self, url):
        self.send("Page.navigate", {"url": url})
        self.browser.wait_for("Page.loadEventFired", session=self.session)
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))", await_promise=True)

    def evaluate(self, expression, await_promise=False):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": await_promise})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path, full_page=False):
        params = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": self.browser.width,
                              "height": min(size["height"], 4000), "scale": 1}
            params["captureBeyondViewport"] = True
        data = base64.b64decode(self.send("Page.captureScreenshot", params)["data"])
        with open(path, "wb") as f:
            f.write(data)
        return data

    def _events(self, *methods):
        return [e for e in self.browser.events if e["method"] in methods and e.get("sessionId") == self.session]

    def console_errors(self):
        """Console errors and warnings, uncaught exceptions and browser log errors, as text."""
        problems = []
        for e in self._events("Runtime.consoleAPICalled"):
            if e["params"]["type"] in ("error", "warning", "assert"):
                problems.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in e["params"]["args"]))
        for e in self._events("Runtime.exceptionThrown"):
            problems.append("exception: " + json.dumps(e["params"]["exceptionDetails"])[:500])
        for e in self._events("Log.entryAdded"):
            if e["params"]["entry"]["level"] in ("error", "warning"):
                problems.append("log: " + e["params"]["entry"].get("text", "") + " " + e["params"]["entry"].get("url", ""))
        return problems

    def requests(self):
        return [e["params"]["request"]["url"] for e in self._events("Network.requestWillBeSent")]

    def dialogs(self):
        return self._events("Page.javascriptDialogOpening")


def png_size(data):
    """(width, height) from a PNG's header."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def png_colours(data, sample=4):
    """How many distinct colours a PNG (8-bit RGB or RGBA, as Chromium writes) holds, sampling every `sample` pixel."""
    import zlib
    width, height = png_size(data)
    depth, colour_type = data[24], data[25]
    if depth != 8 or colour_type not in (2, 6):
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour_type}")
    channels = 3 if colour_type == 2 else 4
    position, idat = 8, b""
    while position < len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        if kind == b"IDAT":
            idat += data[position + 8:position + 8 + length]
        position += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    colours = set()
    offset = 0
    for y in range(height):
        kind = raw[offset]
        line = bytearray(raw[offset + 1:offset + 1 + stride])
        offset += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            upper_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - upper_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upper_left)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else upper_left
                line[i] = (line[i] + predictor) & 255
        previous = line
        if y % sample == 0:
            for x in range(0, width, sample):
                colours.add(bytes(line[x * channels:x * channels + 3]))
    return len(colours)
