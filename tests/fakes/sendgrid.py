"""A loopback stand-in for SendGrid's v3 Mail Send API, the ESP behind the anymail provider.

It speaks SendGrid's shapes: ``POST /v3/mail/send`` with a JSON body and a
``Bearer`` API key, answered 202 with an ``X-Message-Id`` header, or with
SendGrid's JSON errors (``{"errors": [{"message", "field", "help"}]}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from tests.fakes.http import QuietHandler, serve

API_KEY = "SG.test-key"


@dataclass
class FakeSendGrid:
    api_key: str
    # every authenticated request's JSON body, in order
    requests: list[dict] = field(default_factory=list)
    # the bodies answered 202: the messages SendGrid took
    accepted: list[dict] = field(default_factory=list)
    # answers to give instead of 202, once each, in order: (HTTP status, JSON body)
    errors: list[tuple[int, dict]] = field(default_factory=list)
    url: str = ""

    def handle(self, path, headers, body: bytes) -> tuple[int, dict, dict | None]:
        if path != "/v3/mail/send":
            return 404, {}, {"errors": [{"message": "Not Found", "field": None, "help": None}]}
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return (
                401,
                {},
                {
                    "errors": [
                        {
                            "message": "The provided authorization grant is invalid, expired, or revoked",
                            "field": None,
                            "help": None,
                        }
                    ]
                },
            )
        message = json.loads(body)
        self.requests.append(message)
        if self.errors:
            status, payload = self.errors.pop(0)
            return status, {}, payload
        self.accepted.append(message)
        return 202, {"X-Message-Id": f"fake{len(self.requests):018d}"}, None


def start_fake_sendgrid(api_key: str = API_KEY) -> tuple[FakeSendGrid, ThreadingHTTPServer]:
    fake = FakeSendGrid(api_key)

    class Handler(QuietHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            status, headers, payload = fake.handle(self.path, self.headers, self.rfile.read(length))
            raw = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if raw:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return fake, serve(Handler, fake)
