#!/usr/bin/python3
"""A small local HTTP API for the fan-out example: GET /item/N answers
{"id": N, "square": N*N} after a short delay, and answers 503 to every
tenth first request for an id, so workers must retry. It serves until the
run's queue "stop" gets a value (pushed by the job's last task).

    http_fixture.py PORT [DELAY_MS]
"""
import http.server
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prun  # noqa: E402

port = int(sys.argv[1])
delay = float(sys.argv[2] if len(sys.argv) > 2 else 5) / 1000.0
seen = set()
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != "item" or not parts[1].isdigit():
            self.send_error(404)
            return
        n = int(parts[1])
        with lock:
            first = n not in seen
            seen.add(n)
        time.sleep(delay)
        if first and n % 10 == 0:
            self.send_error(503, "try again")
            return
        body = json.dumps({"id": n, "square": n * n}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
prun.counter_add("http-ready", 1)
print("serving on 127.0.0.1:%d" % port, flush=True)
# Wait for the stop signal from the job's last task (at most an hour).
prun.queue_pop("stop", timeout_ms=3600 * 1000)
server.shutdown()
print("served %d ids" % len(seen))
