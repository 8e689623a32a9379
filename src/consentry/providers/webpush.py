"""Web Push (RFC 8030) for in-app notices: payloads encrypted for the browser
(aes128gcm, RFC 8291) and signed with the service's VAPID key (RFC 8292), by pywebpush.

Push is a courtesy on top of the stored notice: a push service refusing it never
undoes the delivery. A subscription the push service calls gone (404/410) is
deleted; any other refusal is kept on the subscription as ``last_error``.

A push only goes to the internet: an endpoint whose name resolves to this
machine or a private network is refused when the push would go, and a push
service's redirect is never followed. The name is resolved once per
connection, and the addresses checked are the ones connected to: a name that
answers differently the second time (DNS rebinding) cannot lead here.

One concern, longer than most modules: VAPID keys, the subscription check,
the push itself (the guard that keeps pushes on the internet is ``consentry/netguard.py``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
from functools import lru_cache
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django_tasks import task
from py_vapid import Vapid

from consentry import netguard
from consentry.errors import InvalidInput

from .models import InAppNotice, PushSubscription

log = logging.getLogger("consentry.push")

PORTAL_PATH = "/portal/"
BODY_CHARS = 120
TIMEOUT_SECONDS = 10
TTL_SECONDS = 24 * 3600  # how long a push service keeps a push for a browser that is offline
GONE = frozenset({404, 410})
MAX_SUBSCRIPTIONS_PER_PATIENT = 20
ENDPOINT_MAX_LENGTH = 2048


# --- configuration ----------------------------------------------------------------


def subject() -> str:
    return settings.CONSENTRY_VAPID_SUBJECT.strip()


def enabled() -> bool:
    """Push is on when the VAPID private key and subject are configured."""
    if not settings.CONSENTRY_VAPID_PRIVATE_KEY.strip():
        return False
    if not subject():
        log.warning("CONSENTRY_VAPID_PRIVATE_KEY is set but CONSENTRY_VAPID_SUBJECT is not: push is off")
        return False
    return True


def signer() -> Vapid:
    return _signer(settings.CONSENTRY_VAPID_PRIVATE_KEY.strip())


@lru_cache(maxsize=2)
def _signer(value: str) -> Vapid:
    """The VAPID key from its setting: base64url (raw 32 bytes or DER), a PEM, or a PEM file's path."""
    try:
        if "-----BEGIN" not in value and os.path.isfile(value):
            with open(value) as f:
                value = f.read()
        if "-----BEGIN" in value:
            key = serialization.load_pem_private_key(value.encode(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                raise ValueError("not a P-256 key")
            return Vapid(private_key=key)
        return Vapid.from_string(value)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ImproperlyConfigured(f"CONSENTRY_VAPID_PRIVATE_KEY is not a readable P-256 private key: {exc}") from exc


def public_key() -> str:
    """The applicationServerKey browsers subscribe with (base64url, uncompressed point)."""
    if settings.CONSENTRY_VAPID_PUBLIC_KEY.strip():
        return settings.CONSENTRY_VAPID_PUBLIC_KEY.strip()
    raw = signer().public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return _b64url_encode(raw)


# --- subscriptions ------------------------------------------------------------------


def _b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64url_decode(value: str) -> bytes | None:
    if not re.fullmatch(r"[A-Za-z0-9_-]+={0,2}", value):
        return None
    unpadded = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError):
        return None


def clean_subscription(endpoint: str, p256dh: str, auth: str) -> tuple[str, str, str]:
    """A browser's subscription checked and normalized, or InvalidInput naming the field."""
    endpoint = endpoint.strip()
    _check_endpoint(endpoint)
    point = _b64url_decode(p256dh.strip())
    if point is None or len(point) != 65 or point[0] != 4:
        raise InvalidInput("keys.p256dh", "must be a P-256 public key: 65 bytes (uncompressed point), base64url")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise InvalidInput("keys.p256dh", "is not a point on the P-256 curve") from None
    secret = _b64url_decode(auth.strip())
    if secret is None or len(secret) != 16:
        raise InvalidInput("keys.auth", "must be the 16-byte auth secret, base64url")
    return endpoint, _b64url_encode(point), _b64url_encode(secret)


def subscribe(*, patient, endpoint: str, p256dh: str, auth: str) -> PushSubscription:
    """Register a browser's subscription for the patient; the same endpoint again updates its keys.

    At most ``MAX_SUBSCRIPTIONS_PER_PATIENT`` per patient: past that, ``InvalidInput`` (delete one first).
    """
    endpoint, p256dh, auth = clean_subscription(endpoint, p256dh, auth)
    with transaction.atomic():
        existing = PushSubscription.objects.select_for_update().filter(patient=patient, endpoint=endpoint).first()
        if (
            existing is None
            and PushSubscription.objects.filter(patient=patient).count() >= MAX_SUBSCRIPTIONS_PER_PATIENT
        ):
            raise InvalidInput(
                "endpoint", f"this patient has {MAX_SUBSCRIPTIONS_PER_PATIENT} subscriptions already: delete one first"
            )
        subscription, _ = PushSubscription.objects.update_or_create(
            patient=patient, endpoint=endpoint, defaults={"p256dh": p256dh, "auth": auth}
        )
    return subscription


def _check_endpoint(endpoint: str) -> None:
    if len(endpoint) > ENDPOINT_MAX_LENGTH:
        raise InvalidInput("endpoint", f"must be at most {ENDPOINT_MAX_LENGTH} characters")
    try:
        URLValidator(schemes=["https", "http"])(endpoint)
    except ValidationError:
        raise InvalidInput("endpoint", "must be a push service's https:// URL") from None
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    loopback_allowed = settings.CONSENTRY_PUSH_ALLOW_LOOPBACK and host == "127.0.0.1"
    if parts.scheme != "https" and not loopback_allowed:
        raise InvalidInput("endpoint", "must be an https:// URL")
    if parts.username or parts.password:
        raise InvalidInput("endpoint", "must not carry credentials")
    if loopback_allowed:
        return
    # A push service is on the internet: never post to this machine or its network.
    if netguard.private_host(host):
        raise InvalidInput("endpoint", "must be a push service on the internet")


# --- sending --------------------------------------------------------------------------


def payload_for(notice: InAppNotice, practice_name: str) -> str:
    """What the service worker receives: small, and only what a lock screen may show."""
    text = notice.subject or notice.body
    return json.dumps({"title": practice_name, "body": text[:BODY_CHARS], "url": PORTAL_PATH})


@task()
def push_notice(notice_id: int) -> dict:
    """Push a stored notice to each of its patient's browsers."""
    notice = InAppNotice.objects.select_related("patient__practice").filter(pk=notice_id).first()
    if notice is None or not enabled():
        return {}
    try:
        vapid = signer()
    except ImproperlyConfigured as exc:
        log.error("push is off: %s", exc)
        return {"misconfigured": 1}
    data = payload_for(notice, notice.patient.practice.name)
    outcomes: dict[str, int] = {}
    with netguard.guarded_session(_may_reach_private) as session:
        for subscription in PushSubscription.objects.filter(patient_id=notice.patient_id).order_by("pk"):
            outcome = _push_one(subscription, data, vapid, session)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _may_reach_private(host: str) -> bool:
    """Only a push service on this machine, for tests (``CONSENTRY_PUSH_ALLOW_LOOPBACK``)."""
    return settings.CONSENTRY_PUSH_ALLOW_LOOPBACK and host == "127.0.0.1"


def _push_one(subscription: PushSubscription, data: str, vapid: Vapid, session: requests.Session) -> str:
    # Imported here: pywebpush brings aiohttp, which nothing else needs (start-up of every process).
    from pywebpush import WebPushException, webpush

    info = {"endpoint": subscription.endpoint, "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}}
    try:
        webpush(
            info,
            data,
            vapid_private_key=vapid,
            vapid_claims={"sub": subject()},
            timeout=TIMEOUT_SECONDS,
            ttl=TTL_SECONDS,
            requests_session=session,
        )
    except WebPushException as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in GONE:
            # The browser unsubscribed or the subscription expired: it never comes back.
            PushSubscription.objects.filter(pk=subscription.pk).delete()
            log.info("push subscription %s is gone (%s): deleted", subscription.pk, status)
            return "gone"
        error = f"{status} {exc.response.reason}: {exc.response.text[:300]}" if status else str(exc.message)
        return _record_error(subscription, error)
    except requests.RequestException as exc:
        if why := netguard.refusal(exc):
            return _record_error(subscription, f"not pushed: {why}")
        return _record_error(subscription, f"{type(exc).__name__}: {exc}")
    except ValueError as exc:  # key material the encryption refuses
        return _record_error(subscription, f"cannot encrypt for this subscription: {exc}")
    if subscription.last_error:
        PushSubscription.objects.filter(pk=subscription.pk).update(last_error="")
    return "pushed"


def _record_error(subscription: PushSubscription, error: str) -> str:
    log.warning("push subscription %s: %s", subscription.pk, error)
    PushSubscription.objects.filter(pk=subscription.pk).update(last_error=error[:1000])
    return "error"
