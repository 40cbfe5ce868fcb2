#!/usr/bin/env python3
"""A recording stand-in for a Slack incoming webhook (make sam-local): answers
every POST 200 "ok" as Slack does and appends its body, one line each, to a
file the checks read. Usage: slack-standin.py PORT FILE (binds 127.0.0.1;
scripts/sam-local.sh forwards the containers' network to it)."""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(sys.argv[2], "ab") as out:
            out.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
