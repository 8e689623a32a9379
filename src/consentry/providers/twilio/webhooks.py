"""Twilio's webhooks, checked and turned into the product's own values.

Every request is checked against the signature Twilio makes with the
practice's auth token before anything is read from it. What cannot be
verified (no signature, a number we do not host, a message id we did not
send) gets the same answer, so the webhook does not reveal which numbers or
messages exist here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from urllib.parse import urlparse

from django.conf import settings
from django.http import HttpRequest
from twilio.request_validator import RequestValidator, add_port, compare, remove_port

from consentry.errors import InvalidInput
from consentry.patients.addresses import e164
from consentry.patients.locations import route_for_number

from ..base import InboundText, StatusReport
from .vocabulary import STATUSES

MAX_SID = 64


class NotVerified(Exception):
    """The request does not carry a valid signature of a practice we host: 403, nothing read."""


def public_url(request: HttpRequest) -> str:
    """The URL Twilio signed: ours as the outside world sees it."""
    if settings.CONSENTRY_PUBLIC_URL:
        return settings.CONSENTRY_PUBLIC_URL + request.get_full_path()
    return request.build_absolute_uri()


class _Fields(dict):
    """A POST's fields, each name to its values, in the shape Twilio's validator asks for first (``getall``, as
    a MultiDict has it): given a plain dict, it fails two lookups per field before it reads one."""

    getall = dict.__getitem__


def _verified(request: HttpRequest, token: str) -> bool:
    signature = request.META.get("HTTP_X_TWILIO_SIGNATURE", "")  # (request.headers would copy every header first)
    if not (signature and token):
        return False
    validator, params = RequestValidator(token), _Fields(request.POST.lists())
    return any(compare(validator.compute_signature(form, params), signature) for form in _signed(public_url(request)))


@lru_cache(maxsize=256)
def _signed(url: str) -> tuple[str, str]:
    """The forms of a URL Twilio may have signed: with its port or without it. The library's ``validate`` always
    computes both, and a STOP's webhook is answered thousands of times a minute: the URL as it reached us first
    (a port is there when the URL Twilio was given had one), the other only when that does not match."""
    parsed = urlparse(url)
    return (add_port(parsed), remove_port(parsed)) if parsed.port else (remove_port(parsed), add_port(parsed))


def inbound_text(request: HttpRequest, *, fresh: bool = False) -> InboundText:
    """A text received at one of a practice's numbers. ``NotVerified`` (403) or ``InvalidInput`` (400, naming the
    field).

    Its route is the one this process kept for the number unless ``fresh`` (``route_for_number``); a signature
    that does not verify with a kept route's token is checked once more with the practice's current one."""
    try:
        number = e164(request.POST.get("To", ""), field="To")
    except InvalidInput:
        raise NotVerified from None
    # Any of a practice's numbers: its own or one of its locations' (they share its account and token).
    route = route_for_number(number, fresh=fresh)
    if route is not None and not _verified(request, route.twilio_auth_token):
        # A kept route's token may have been replaced since it was read: once more with the practice's current one.
        kept, route = route, None if fresh else route_for_number(number, fresh=True)
        same = route is not None and route.twilio_auth_token == kept.twilio_auth_token
        if route is None or same or not _verified(request, route.twilio_auth_token):
            route = None
    if route is None:
        raise NotVerified
    sid, sender, body = (request.POST.get(k, "") for k in ("MessageSid", "From", "Body"))
    if not sid or not sender:
        raise InvalidInput("From" if sid else "MessageSid", "is required")
    if len(sid) > MAX_SID:
        raise InvalidInput("MessageSid", "is too long")
    return InboundText(
        practice=route,
        from_number=sender,
        to_number=number,
        body=body,
        provider="twilio",
        provider_ref=sid,
    )


def status_report(request: HttpRequest, token_for: Callable[[str], str | None]) -> StatusReport:
    """A status callback for a message or call we sent; ``token_for(sid)`` is the auth token of the practice that
    sent it (None when we did not). ``NotVerified`` (403) or ``InvalidInput`` (400)."""
    sid = request.POST.get("MessageSid") or request.POST.get("CallSid") or ""
    token = token_for(sid) if sid else None
    if not token or not _verified(request, token):
        raise NotVerified
    provider_status = request.POST.get("MessageStatus") or request.POST.get("CallStatus") or ""
    if not provider_status:
        raise InvalidInput("MessageStatus", "MessageStatus or CallStatus is required")
    return StatusReport(
        provider_ref=sid,
        status=STATUSES.get(provider_status),
        provider_status=provider_status[:32],
        error_code=request.POST.get("ErrorCode", "")[:32],
    )
