"""A practice's system on loopback that receives Consentry's signed events.

Each endpoint (a path) is given the secret its registration answered; the
receiver checks every POST with the verification recipe of docs/webhooks.md
(the ``standardwebhooks`` library), answers 401 to one that does not verify
and 204 to one that does, unless told to answer otherwise for a while (a
list of statuses, used up one per request: ``[500]`` then 204).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.fakes.http import CountingServer, QuietHandler, serve


@dataclass
class WebhookReceiver:
    url: str = ""
    secrets: dict[str, str] = field(default_factory=dict)  # path -> whsec_...
    answers: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer first
    # Every request that reached the receiver: {"path", "headers" (lowercased), "body" (raw), "status"}.
    requests: list[dict] = field(default_factory=list)
    # The events that verified: {"path", "id", "event"}.
    received: list[dict] = field(default_factory=list)
    server: CountingServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def endpoint(self, path: str) -> str:
        return f"{self.url}{path}"

    def events(self, path: str | None = None, kind: str | None = None) -> list[dict]:
        return [
            r["event"]
            for r in self.received
            if (path is None or r["path"] == path) and (kind is None or r["event"]["type"] == kind)
        ]

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            pending = self.answers.get(path)
            status = pending.pop(0) if pending else None
            secret = self.secrets.get(path)
        if secret is None:
            status = 404
        elif status is None:
            try:
                event = Webhook(secret).verify(body, headers)  # the recipe of docs/webhooks.md
            except WebhookVerificationError:
                status = 401
            else:
                status = 204
                with self._lock:
                    self.received.append({"path": path, "id": headers["webhook-id"], "event": event})
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "body": body, "status": status})
        return status


def start_receiver() -> WebhookReceiver:
    fake = WebhookReceiver()

    class Handler(QuietHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = fake.handle(self.path, headers, body)
            self.send_response(status)
            if status in (301, 302, 307, 308):
                self.send_header("Location", fake.endpoint("/elsewhere"))
            self.send_header("Content-Length", "0")
            self.end_headers()

    fake.server = serve(Handler, fake)
    return fake


def stop_receiver(fake: WebhookReceiver) -> None:
    if fake.server is not None:
        fake.server.shutdown()
        fake.server.server_close()


def verify_by_hand(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> dict:
    """The by-hand recipe of docs/webhooks.md, word for word: what a receiver without the library does."""
    import base64
    import hashlib
    import hmac
    import time

    now = time.time() if now is None else now
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(now - int(timestamp)) > 5 * 60:
        raise ValueError("timestamp too old or too new")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in headers["webhook-signature"].split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return json.loads(body)
    raise ValueError("no valid signature")
