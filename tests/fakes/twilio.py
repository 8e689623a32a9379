"""A loopback stand-in for Twilio's REST API: the Messages and Calls resources.

It speaks Twilio's request and response shapes (form-encoded POSTs under
/2010-04-01/Accounts/{AccountSid}/, HTTP Basic auth with the account SID and
auth token, JSON resources and JSON errors with Twilio's error codes), so the
official ``twilio`` client runs unchanged against it.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import socket
import struct
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs

from tests.fakes.http import QuietHandler, serve

ROUTE = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC\w+)/(?P<resource>Messages|Calls)\.json$")


@dataclass
class FakeTwilio:
    account_sid: str
    auth_token: str
    # every authenticated request: {"resource", "form", "at" (epoch seconds), and "sid" when it was accepted}
    requests: list[dict] = field(default_factory=list)
    # to-number -> (HTTP status, Twilio error code, message): answer sends to it with that error
    errors: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    # to-number -> errors to answer once each, in order, before sends to it succeed; an error may carry
    # response headers as a fourth item (e.g. {"Retry-After": "30"} with a 429)
    failures: dict[str, list[tuple]] = field(default_factory=dict)
    # to-numbers whose next send is taken (recorded, with a sid) and then the connection is reset
    # before any answer: the message went out, and the client cannot know
    resets: set[str] = field(default_factory=set)
    # seconds to wait before answering (after recording the request): a slow Twilio
    delay: float = 0.0
    # to-number -> seconds to wait before answering sends to it (a call that hangs)
    delays: dict[str, float] = field(default_factory=dict)
    url: str = ""
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def messages(self) -> list[dict]:
        return [r for r in self.requests if r["resource"] == "Messages"]

    def calls(self) -> list[dict]:
        return [r for r in self.requests if r["resource"] == "Calls"]

    def handle(self, path: str, headers, body: bytes) -> tuple[int, dict | None, dict]:
        """(HTTP status, JSON body, response headers); a body of None: reset the connection instead."""
        match = ROUTE.match(path)
        if not match:
            return 404, _error(404, 20404, "The requested resource was not found"), {}
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if match["account"] != self.account_sid or headers.get("Authorization") != expected:
            return 401, _error(401, 20003, "Authenticate"), {}
        form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        resource = match["resource"]
        record = {"resource": resource, "form": form, "at": time.time()}  # when Twilio had it
        self.requests.append(record)
        to = form.get("To", "")
        if self.delay or to in self.delays:
            time.sleep(self.delays.get(to, self.delay))
        if self.failures.get(to):
            status, code, message, *extra = self.failures[to].pop(0)
            return status, _error(status, code, message), (extra[0] if extra else {})
        if to in self.errors:
            status, code, message = self.errors[to]
            return status, _error(status, code, message), {}
        if not to or not form.get("From"):
            return 400, _error(400, 21604, "A 'To' phone number is required."), {}
        prefix = "SM" if resource == "Messages" else "CA"
        sid = f"{prefix}{next(self._counter):032x}"
        record["sid"] = sid  # the id the client gets back for this message or call
        if to in self.resets:
            self.resets.discard(to)
            return 201, None, {}
        now = formatdate(usegmt=True)
        common = {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": form["From"],
            "status": "queued",
            "date_created": now,
            "date_updated": now,
            "api_version": "2010-04-01",
            "price": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/{resource}/{sid}.json",
        }
        if resource == "Messages":
            return (
                201,
                {
                    **common,
                    "body": form.get("Body", ""),
                    "num_segments": "1",
                    "direction": "outbound-api",
                    "error_code": None,
                    "error_message": None,
                    "messaging_service_sid": None,
                },
                {},
            )
        return 201, {**common, "direction": "outbound-api", "parent_call_sid": None, "duration": None}, {}


def _error(status: int, code: int, message: str) -> dict:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def start_fake_twilio(account_sid: str, auth_token: str) -> tuple[FakeTwilio, ThreadingHTTPServer]:
    fake = FakeTwilio(account_sid, auth_token)

    class Handler(QuietHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            status, payload, headers = fake.handle(self.path, self.headers, self.rfile.read(length))
            if payload is None:  # reset: no answer at all, the connection closed with RST
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                return
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped waiting (a timeout test): Twilio would not notice either

    return fake, serve(Handler, fake)
