#!/usr/bin/env python3
"""moto's EC2 API on 127.0.0.1 for hoist's tests, with what a test needs around it.

- Instance public addresses come from --public-ips (lab hosts), in turn, never moto's invented
  ones (those belong to nobody here and must never be contacted).
- Every EC2 call is counted by action: GET /_hoist/calls (JSON), POST /_hoist/calls/reset;
  the signatures' credential scopes (`ACCESS_KEY/REGION`) are counted too: GET /_hoist/scopes;
  and the seconds moto took to answer, by action: GET /_hoist/seconds; and each call's parameters
  (all but Action and Version), in order: GET /_hoist/requests.
- POST /_hoist/public-ips?ips=A,B replaces the pool of public addresses.
- POST /_hoist/reset?ips=A,B forgets everything (moto's state: instances, key pairs, groups, IAM;
  and the counts, requests, faults, client tokens), with a new pool: tests that share one server
  each begin on a fresh one.
- --exit-with-stdin: the server ends when its standard input closes (its test process ended).
- Faults, each for the next N calls of one action (POST /_hoist/fault?action=A&count=N&kind=K):
  kind=throttle answers 503 RequestLimitExceeded without doing the call; kind=lost does the call
  and then answers 500 InternalError, as when an answer is lost on the way; kind=slow does the
  call and answers after `seconds`; kind=error answers 400 with `code`.
- RunInstances honours ClientToken as EC2 does (moto does not): the same token returns the
  first call's answer instead of starting another instance.
"""

import argparse
import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs

import moto.ec2.models.elastic_network_interfaces as enis
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

lock = threading.Lock()
calls = {}
seconds = {}
scopes = {}
pool = []
faults = {}
tokens = {}
requests = []
handed = {"next": 0}


def error_body(code, message):
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
        f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        "<RequestID>hoist-lab</RequestID></Response>"
    ).encode()


class Wrapper:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_hoist/"):
            return self.control(environ, start_response, path)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        form = parse_qs(body.decode(errors="replace"))
        action = (form.get("Action") or [""])[0]
        token = (form.get("ClientToken") or [""])[0]

        import io

        environ["wsgi.input"] = io.BytesIO(body)
        # Authorization: AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/ec2/aws4_request, ...
        credential = environ.get("HTTP_AUTHORIZATION", "").split("Credential=")[-1].split(",")[0]
        parts = credential.split("/")
        scope = f"{parts[0]}/{parts[2]}" if len(parts) > 2 else "unsigned"
        with lock:
            requests.append({"Action": action, **{k: v[0] for k, v in form.items() if k not in ("Action", "Version")}})
            calls[action] = calls.get(action, 0) + 1
            scopes[scope] = scopes.get(scope, 0) + 1
            fault = faults.get(action)
            if fault and fault["count"] > 0:
                fault["count"] -= 1
            else:
                fault = None
            if action == "RunInstances" and token in tokens:
                status, headers, data = tokens[token]
                start_response(status, headers)
                return [data]
        if fault and fault["kind"] == "throttle":
            start_response("503 Service Unavailable", [("Content-Type", "text/xml")])
            return [error_body("RequestLimitExceeded", "Request limit exceeded.")]
        if fault and fault["kind"] == "error":
            start_response("400 Bad Request", [("Content-Type", "text/xml")])
            return [error_body(fault["code"], "injected by the lab")]
        began = time.monotonic()
        status, headers, data = self.run(environ)
        with lock:
            seconds[action] = seconds.get(action, 0.0) + time.monotonic() - began
        if action == "RunInstances" and token and status.startswith("200"):
            with lock:
                tokens[token] = (status, headers, data)
        if fault and fault["kind"] == "slow":
            time.sleep(fault["seconds"])
        if fault and fault["kind"] == "lost":
            start_response("500 Internal Server Error", [("Content-Type", "text/xml")])
            return [error_body("InternalError", "An internal error has occurred.")]
        start_response(status, headers)
        return [data]

    def run(self, environ):
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"] = status
            captured["headers"] = headers

        data = b"".join(self.app(environ, capture))
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(data))))
        return captured["status"], headers, data

    def control(self, environ, start_response, path):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        arg = lambda name, default="": (query.get(name) or [default])[0]
        with lock:
            if path == "/_hoist/calls":
                data = json.dumps(calls).encode()
            elif path == "/_hoist/scopes":
                data = json.dumps(scopes).encode()
            elif path == "/_hoist/seconds":
                data = json.dumps(seconds).encode()
            elif path == "/_hoist/requests":
                data = json.dumps(requests).encode()
            elif path == "/_hoist/public-ips":
                pool[:] = [ip for ip in arg("ips").split(",") if ip]
                data = b"{}"
            elif path == "/_hoist/calls/reset":
                calls.clear()
                requests.clear()
                scopes.clear()
                seconds.clear()
                data = b"{}"
            elif path == "/_hoist/reset":
                moto_api_backend.reset()
                for state in (calls, requests, scopes, seconds, faults, tokens):
                    state.clear()
                pool[:] = [ip for ip in arg("ips").split(",") if ip]
                handed["next"] = 0
                data = b"{}"
            elif path == "/_hoist/fault":
                faults[arg("action")] = {
                    "kind": arg("kind", "throttle"),
                    "count": int(arg("count", "1")),
                    "code": arg("code", "InvalidParameterValue"),
                    "seconds": float(arg("seconds", "0")),
                }
                data = b"{}"
            else:
                start_response("404 Not Found", [])
                return [b""]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [data]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--public-ips", default="", help="comma-separated lab host addresses")
    parser.add_argument("--exit-with-stdin", action="store_true", help="end when stdin closes")
    args = parser.parse_args()
    pool[:] = [ip for ip in args.public_ips.split(",") if ip]
    if args.exit_with_stdin:

        def exit_at_eof():
            while sys.stdin.buffer.read(4096):
                pass
            os._exit(0)

        threading.Thread(target=exit_at_eof, daemon=True).start()

    def lab_public_ip():
        # No pool: no public address a test could ever contact by mistake.
        if not pool:
            return "127.0.0.1"
        with lock:
            ip = pool[handed["next"] % len(pool)]
            handed["next"] += 1
        return ip

    enis.random_public_ip = lab_public_ip
    app = Wrapper(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    print(f"moto EC2 on 127.0.0.1:{args.port}", flush=True)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
