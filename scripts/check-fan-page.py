#!/usr/bin/env python3
"""The fan page in a real browser: headless Chromium, driven over the
DevTools protocol (CDP), against the running gateway and functions.

It defines an event with a line at 2 admissions a second and puts a dozen
fans in it ahead of the browser's fan, then, in the page: types the event id
and a fan id, clicks Enter, and watches. The page must show a position (and
people ahead, and an ETA) while the fan waits, whose numbers agree in every
state it shows (position = people ahead + 1, the progress bar = the share of
the most people ever ahead who are no longer ahead); reloaded in the middle
of the wait, it must carry on with the same ticket, not from the back; then
it shows the answer "You're in" with a position, with no script error on the
way. The event has a pre-queue: while the fan waits the page shows the
draw's commitment the API gives, and once in, the fan's signed receipt (the
one GET /entries/me gives) with links to the keys and the draw that check
it. Screenshots of the states go to target/fan-page/.

    check-fan-page.py BASE_URL   (for example http://127.0.0.1:9400)
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import http.server
import threading
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import websocket  # websocket-client, pinned in scripts/test.sh

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "fan-page"
AHEAD = 12
RATE = 2


def api(base, method, path, body=None, fan=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("content-type", "application/json")
    if fan:
        request.add_header("x-fan-id", fan)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Page:
    """One page target over CDP: commands in order, events kept."""

    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events = []

    def send(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def type_into(self, selector, text):
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def click(self, selector):
        """A real mouse click at the element's centre, once the element is
        what is drawn there (the layout may still be moving)."""
        deadline = time.time() + 10
        while True:
            box = self.evaluate(
                f"(() => {{ const e = document.querySelector({json.dumps(selector)}); const r = e.getBoundingClientRect();"
                " const x = r.x + r.width / 2, y = r.y + r.height / 2;"
                " return [x, y, document.elementFromPoint(x, y) === e]; })()"
            )
            if box[2]:
                break
            if time.time() > deadline:
                sys.exit(f"{selector} is not where the page draws it")
            time.sleep(0.1)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)


class Trap(http.server.BaseHTTPRequestHandler):
    """A server the page must never reach: it records every request (a CORS
    preflight included) and would answer anything, from any origin."""

    seen = []

    def answer(self):
        Trap.seen.append((self.command, self.path, self.headers.get("authorization")))
        self.send_response(200)
        self.send_header("access-control-allow-origin", "*")
        self.send_header("access-control-allow-headers", "*")
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_OPTIONS = answer

    def log_message(self, *args):
        pass


def check_api_is_pinned(page, base, event):
    """The page opened with ?api= pointing elsewhere talks to its own API
    only: it says so, its calls (the event lookup, an entry with a token)
    go to `base`, and its Content-Security-Policy blocks even a fetch
    written by hand. The trap server hears nothing."""
    trap = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trap)
    threading.Thread(target=trap.serve_forever, daemon=True).start()
    elsewhere = f"http://127.0.0.1:{trap.server_address[1]}"
    try:
        page.send("Page.navigate", url=f"{base}/?api={elsewhere}&event={event}")
        deadline = time.time() + 20
        while page.evaluate("document.readyState") != "complete" or page.evaluate("document.getElementById('api').textContent") != base:
            if time.time() > deadline:
                sys.exit(f"the page opened with ?api={elsewhere} does not name its own API {base}")
            time.sleep(0.1)
        status = page.evaluate("document.getElementById('status').textContent")
        if "is ignored" not in status:
            sys.exit(f"the page does not say ?api= was ignored: {status!r}")
        page.type_into("#token", "eyJ.a-fan's-token.sig")
        page.evaluate("document.getElementById('event').dispatchEvent(new Event('change'))")
        page.click("#enter")
        by_hand = page.evaluate(f"fetch({json.dumps(elsewhere + '/x')}).then(() => 'sent', () => 'blocked')")
        time.sleep(2)
        if by_hand != "blocked":
            sys.exit(f"the page's Content-Security-Policy let a fetch to {elsewhere} through")
        if Trap.seen:
            sys.exit(f"the page sent {len(Trap.seen)} requests to {elsewhere}: {Trap.seen[:3]}")
        policy = page.evaluate("document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]').content")
        if "connect-src 'self'" not in policy or "default-src 'none'" not in policy:
            sys.exit(f"the page's policy is not the strict one: {policy}")
        return f"Opened with ?api={elsewhere}: nothing sent there, a fetch by hand blocked by its policy."
    finally:
        trap.shutdown()


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("no chromium on PATH (make test installs Debian's chromium package)")


def main():
    base = sys.argv[1].rstrip("/")
    OUT.mkdir(parents=True, exist_ok=True)
    event = f"page-{os.getpid()}-{int(time.time())}"
    now = datetime.now(timezone.utc)
    opens = now + timedelta(seconds=3)
    status, body = api(base, "PUT", f"/admin/events/{event}", {
        "title": "The fan page's test event",
        "opensAt": iso(opens.replace(microsecond=0) + timedelta(seconds=1)),
        "closesAt": iso(now + timedelta(hours=1)),
        "capacity": 100,
        "expectedPeakRps": 100,
        "admissionsPerSecond": RATE,
        "prequeueMinutes": 1,
    })
    if status not in (200, 201):
        sys.exit(f"could not define the event: {status} {body}")
    opens_at = datetime.strptime(body["opensAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)

    profile = tempfile.mkdtemp(prefix="fanrush-chromium-")
    browser = subprocess.Popen(
        [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "--window-size=900,1100", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Chromium names its port in the profile once it listens.
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.time() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.time() > deadline or browser.poll() is not None:
                sys.exit(f"chromium did not start: {browser.stderr.read() if browser.poll() is not None else 'timeout'}")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.loads(r.read())
        page = Page(next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"))
        page.send("Page.enable")
        page.send("Runtime.enable")
        page.send("Page.navigate", url=base + "/")
        deadline = time.time() + 20
        while page.evaluate("document.readyState") != "complete" or not page.evaluate("!!document.getElementById('enter')"):
            if time.time() > deadline:
                sys.exit("the page did not load")
            time.sleep(0.1)
        title = page.evaluate("document.title")
        assert "fanrush" in title, title

        # The line forms at the opening: a dozen fans join in its first
        # instant, ahead of the browser's fan.
        while datetime.now(timezone.utc) < opens_at:
            time.sleep(0.02)
        for i in range(AHEAD):
            status, body = api(base, "POST", f"/events/{event}/entries", {"note": None}, fan=f"ahead-{i}")
            if status not in (200, 202, 203):
                sys.exit(f"fan ahead-{i} was answered {status} {body}")

        page.type_into("#event", event)
        page.type_into("#fan", "browser-fan")
        # Leaving the event field looks the event up; the page names it.
        deadline = time.time() + 10
        while "places left" not in (page.evaluate("document.getElementById('event-info').textContent") or ""):
            if time.time() > deadline:
                sys.exit("the page did not describe the event")
            time.sleep(0.05)
        page.click("#enter")

        seen_waiting = None
        page_commitment = None
        reloaded = None
        most_ahead = 0
        outcome = None
        read_state = (
            "({line: !document.getElementById('line').hidden, result: !document.getElementById('result').hidden,"
            " position: document.getElementById('position').textContent,"
            " ahead: document.getElementById('ahead').textContent,"
            " eta: document.getElementById('eta').textContent,"
            " progress: document.getElementById('progress').value,"
            " ticket: (JSON.parse(sessionStorage.getItem('fanrush:attempt')) || {}).ticket || null,"
            " title: document.getElementById('result-title').textContent,"
            " text: document.getElementById('result-text').textContent,"
            " commitment: document.getElementById('commitment-text').hidden ? null"
            "   : document.getElementById('commitment').textContent,"
            " receipt: document.getElementById('receipt').hidden ? null"
            "   : document.getElementById('receipt-json').textContent,"
            " draw: document.getElementById('receipt-draw').href})"
        )
        deadline = time.time() + 90
        while time.time() < deadline:
            state = page.evaluate(read_state)
            if state["line"] and state["position"].isdigit() and state["ahead"].isdigit():
                position, ahead = int(state["position"]), int(state["ahead"])
                if position != ahead + 1:
                    sys.exit(f"position and people ahead disagree: {state}")
                most_ahead = max(most_ahead, ahead)
                expected = min(1, max(0, 1 - ahead / max(most_ahead, 1)))
                if abs(state["progress"] - expected) > 0.01:
                    sys.exit(f"the progress bar shows {state['progress']}, not {expected:.3f} ({ahead} of {most_ahead}): {state}")
                if state["commitment"]:
                    page_commitment = state["commitment"]
                if seen_waiting is None:
                    seen_waiting = state
                    page.screenshot(OUT / "waiting.png")
                elif reloaded is None and ahead >= 1:
                    # A reload in the middle of the wait.
                    before = state
                    page.send("Page.reload")
                    loaded = time.time() + 20
                    while True:
                        time.sleep(0.1)
                        after = page.evaluate(read_state)
                        if after["line"] and after["position"].isdigit() and after["ticket"]:
                            break
                        if after["result"] or time.time() > loaded:
                            sys.exit(f"the reloaded page did not carry on waiting: {after}")
                    if after["ticket"] != before["ticket"]:
                        sys.exit(f"the reload lost the ticket: {before['ticket']} then {after['ticket']}")
                    if int(after["position"]) > int(before["position"]):
                        sys.exit(f"the reload moved the fan back: position {before['position']} then {after['position']}")
                    reloaded = (before, after)
                    page.screenshot(OUT / "reloaded.png")
            if state["result"]:
                outcome = state
                break
            time.sleep(0.1)
        page.screenshot(OUT / "result.png")
        errors = [e for e in page.events if e.get("method") == "Runtime.exceptionThrown"]
        if errors:
            sys.exit(f"the page threw: {errors[0]['params']['exceptionDetails']}")
        if seen_waiting is None:
            sys.exit(f"the page never showed a position in line (last state {outcome})")
        if not seen_waiting["ahead"].isdigit() or int(seen_waiting["ahead"]) < 1:
            sys.exit(f"the page showed no one ahead while waiting: {seen_waiting}")
        if reloaded is None:
            sys.exit("the fan was admitted before the page could be reloaded in the middle of its wait")
        if outcome is None:
            sys.exit("the page showed no answer within 90 s")
        if outcome["title"] != "You're in!" or "at position" not in outcome["text"]:
            sys.exit(f"the page's answer is not an admission: {outcome}")
        status, entry = api(base, "GET", f"/events/{event}/entries/me", fan="browser-fan")
        if status != 200 or f"position {entry['position']}." not in outcome["text"]:
            sys.exit(f"the page's position does not match the API's entry: {outcome['text']} vs {status} {entry}")
        status, view = api(base, "GET", f"/events/{event}")
        shown = page_commitment or ""
        if status != 200 or not view.get("drawCommitment") or shown != view["drawCommitment"]:
            sys.exit(f"the page showed the commitment {shown!r} while waiting, the API gives {view}")
        receipt = json.loads(outcome["receipt"] or "null")
        signed = ("eventId", "fan", "position", "acceptedAt", "drawKey", "keyId", "signature")
        if not receipt or any(receipt.get(k) != entry["receipt"].get(k) for k in signed):
            sys.exit(f"the page's receipt is not the fan's: {receipt} vs {entry.get('receipt')}")
        if not outcome["draw"].endswith(f"/draws/{event}"):
            sys.exit(f"the receipt's check link is not the event's draw: {outcome['draw']}")
        pinned = check_api_is_pinned(page, base, event)
        before, after = reloaded
        print(f"fan page: waited at position {seen_waiting['position']} with {seen_waiting['ahead']} ahead "
              f"(ETA {seen_waiting['eta']}); reloaded at position {before['position']}, back at {after['position']} "
              f"with the same ticket, the draw's commitment shown; then: {outcome['text']}, with its receipt. {pinned} Screenshots in {OUT.relative_to(ROOT)}/")
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)
        api(base, "DELETE", f"/admin/events/{event}")


if __name__ == "__main__":
    main()
