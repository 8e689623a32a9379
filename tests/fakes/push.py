"""A loopback Web Push service, and browsers that subscribe to it.

It speaks the push service's side of RFC 8030/8291/8292: it takes a push as a
POST to a subscription's endpoint, refuses it (401) unless the ``Authorization:
vapid t=<JWT>,k=<key>`` header carries an ES256 JWT signed by the expected
application server key, with this service's origin as ``aud``, a near ``exp``
and a ``sub``; then it decrypts the aes128gcm body with the subscribing
browser's own P-256 private key and auth secret (``http_ece``), and keeps the
decrypted JSON. A subscription can be told to answer 410 (gone) or 500.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.fakes.http import QuietHandler, serve


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """What a browser holds for one subscription: its key pair and auth secret."""

    path: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes
    endpoint: str = ""

    def subscription(self) -> dict:
        """The PushSubscription JSON the browser hands the page (``subscription.toJSON()``)."""
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(point), "auth": b64url(self.auth_secret)},
        }


@dataclass
class FakePushService:
    application_server_key: str  # the VAPID public key subscriptions were made with (base64url)
    url: str = ""
    browsers: dict[str, Browser] = field(default_factory=dict)
    # every push that reached a known endpoint: {"path", "headers" (lowercased names), "body" (raw)}
    requests: list[dict] = field(default_factory=list)
    # decrypted pushes: {"path", "payload"}
    received: list[dict] = field(default_factory=list)
    # pushes refused for a bad VAPID header or undecryptable content: (path, why)
    rejections: list[tuple[str, str]] = field(default_factory=list)
    # path -> HTTP status to answer instead of accepting (410 gone, 500 ...)
    answers: dict[str, int] = field(default_factory=dict)
    # path -> URL to redirect a push to (307, which keeps the POST)
    redirects: dict[str, str] = field(default_factory=dict)
    server: object = None  # the loopback server, which counts the connections it accepted
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self) -> Browser:
        """A new browser subscription: a fresh P-256 key pair and 16-byte auth secret, as a browser makes."""
        path = f"/push/v1/{next(self._counter)}-{os.urandom(8).hex()}"
        browser = Browser(path, ec.generate_private_key(ec.SECP256R1()), os.urandom(16), self.url + path)
        self.browsers[path] = browser
        return browser

    def payloads(self, browser: Browser) -> list[dict]:
        return [r["payload"] for r in self.received if r["path"] == browser.path]

    def handle(self, path: str, headers, body: bytes) -> int:
        browser = self.browsers.get(path)
        if browser is None:
            return 404
        with self._lock:
            self.requests.append({"path": path, "headers": {k.lower(): v for k, v in headers.items()}, "body": body})
        why = self._vapid_problem(headers.get("Authorization", ""))
        if why is None and headers.get("Content-Encoding") != "aes128gcm":
            why = f"Content-Encoding {headers.get('Content-Encoding')!r}, not aes128gcm"
        if why is None and not (headers.get("TTL") or "").isdigit():
            why = "no TTL header"
        if why is not None:
            self.rejections.append((path, why))
            return 401
        if path in self.answers:
            return self.answers[path]
        try:
            plain = http_ece.decrypt(
                body, private_key=browser.private_key, auth_secret=browser.auth_secret, version="aes128gcm"
            )
            payload = json.loads(plain)
        except Exception as exc:  # noqa: BLE001 (any failure to decrypt is the sender's fault)
            self.rejections.append((path, f"cannot decrypt: {exc!r}"))
            return 400
        with self._lock:
            self.received.append({"path": path, "payload": payload})
        return 201

    def _vapid_problem(self, authorization: str) -> str | None:
        """Why this Authorization header is not a valid VAPID one for us, or None (RFC 8292)."""
        scheme, _, params = authorization.partition(" ")
        if scheme.lower() != "vapid":
            return f"scheme {scheme!r}, not vapid"
        parts = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        if parts.get("k") != self.application_server_key:
            return "k is not the application server key"
        try:
            header_b64, claims_b64, signature_b64 = parts["t"].split(".")
            header = json.loads(unb64url(header_b64))
            claims = json.loads(unb64url(claims_b64))
            signature = unb64url(signature_b64)
        except (KeyError, ValueError):
            return "t is not a JWT"
        if header.get("alg") != "ES256" or len(signature) != 64:
            return "JWT is not ES256"
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(parts["k"]))
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return "JWT signature does not verify with k"
        if claims.get("aud") != self.url:
            return f"aud {claims.get('aud')!r}, not {self.url!r}"
        if not time.time() < claims.get("exp", 0) <= time.time() + 24 * 3600:
            return "exp is not within the next 24 hours"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            return "sub is not a mailto: or https: contact"
        return None


def start_fake_push(application_server_key: str) -> tuple[FakePushService, ThreadingHTTPServer]:
    fake = FakePushService(application_server_key)

    class Handler(QuietHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path in fake.redirects:
                self.send_response(307)
                self.send_header("Location", fake.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = fake.handle(self.path, self.headers, body)
            self.send_response(status)
            if status == 201:
                self.send_header("Location", f"{fake.url}/push/message/{next(fake._counter)}")
            self.send_header("Content-Length", "0")
            self.end_headers()

    fake.server = serve(Handler, fake)
    return fake, fake.server
