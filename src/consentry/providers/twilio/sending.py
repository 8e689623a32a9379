"""SMS and voice through Twilio's REST API, with the official ``twilio`` library.

Each practice sends with its own account SID and auth token, from the number the dispatcher chose
(``Outbound.sender``: the practice's or one of its locations').
``CONSENTRY_TWILIO_API_BASE`` points the client somewhere other than
``https://api.twilio.com`` (a regional edge, or the loopback fake the tests run).
"""

from __future__ import annotations

import requests
from django.conf import settings
from django.urls import reverse
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from ..base import Outbound, ProviderError, SendResult

TWILIO_API = "https://api.twilio.com"


class _HttpClient(TwilioHttpClient):
    """The library's HTTP client, sent to ``base`` instead of api.twilio.com when asked, and keeping the
    Retry-After of a 429 (the library's error does not carry the response's headers)."""

    def __init__(self, base: str, **kwargs):
        super().__init__(**kwargs)
        self.base = base.rstrip("/")
        self.retry_after: float | None = None

    def request(self, method, url, *args, **kwargs):
        if url.startswith(TWILIO_API) and self.base != TWILIO_API:
            url = self.base + url[len(TWILIO_API) :]
        response = super().request(method, url, *args, **kwargs)
        self.retry_after = _seconds(response.headers.get("Retry-After")) if response.status_code == 429 else None
        return response


def _seconds(value) -> float | None:
    """Retry-After in seconds (HTTP allows a date too; Twilio sends seconds, anything else is ignored)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return min(max(seconds, 0.0), 3600.0)


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the request cannot have reached Twilio: no connection was made (refused, no route, DNS, a
    connect timeout). A connection lost after the request was written (a reset while waiting for the answer)
    is not that: Twilio may have taken the message."""
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    return isinstance(cause, NewConnectionError | ConnectTimeoutError)  # NameResolutionError is a NewConnectionError


def status_callback_url() -> str:
    base = settings.CONSENTRY_PUBLIC_URL
    return f"{base}{reverse('twilio-status')}" if base else ""


def voice_twiml(practice_name: str, text: str) -> str:
    """TwiML that says who is calling, then the message."""
    response = VoiceResponse()
    response.say(f"This is {practice_name}. {text}")
    return str(response)


class TwilioProvider:
    name = "twilio"
    channels = frozenset({"sms", "voice"})
    # Messages (and calls) per second a US long code takes; a practice on a
    # short code or a toll-free number sets its own (Practice.sms_rate_per_second).
    default_rate = 1.0
    # Twilio reports by status callback, keyed by the id it returns: the
    # dispatcher stores that id at once, so no callback arrives before it.
    status_callbacks = True

    def __init__(self, practice) -> None:
        if not practice.twilio_account_sid or not practice.twilio_auth_token:
            raise ProviderError("the practice has no Twilio account connected", code="twilio_not_configured")
        self.practice = practice
        self.http = _HttpClient(settings.CONSENTRY_TWILIO_API_BASE, timeout=settings.CONSENTRY_PROVIDER_TIMEOUT)
        self.client = Client(practice.twilio_account_sid, practice.twilio_auth_token, http_client=self.http)

    def send(self, message: Outbound) -> SendResult:
        callback = status_callback_url()
        extra = {"status_callback": callback} if callback else {}
        try:
            if message.channel == "voice":
                call = self.client.calls.create(
                    to=message.to,
                    from_=message.sender,
                    twiml=voice_twiml(self.practice.name, message.body),
                    **extra,
                )
                return SendResult(provider_ref=call.sid, status="sent")
            if message.messaging_service_sid:  # the service's features, with this number of its pool as the sender
                extra["messaging_service_sid"] = message.messaging_service_sid
            sent = self.client.messages.create(to=message.to, from_=message.sender, body=message.body, **extra)
            return SendResult(provider_ref=sent.sid, status="sent")
        except TwilioRestException as exc:
            # 429 and 5xx: Twilio did not take the message; trying later is safe (after Retry-After, if said).
            transient = exc.status == 429 or exc.status >= 500
            raise ProviderError(
                exc.msg or str(exc),
                code=str(exc.code or exc.status),
                transient=transient,
                retry_after=self.http.retry_after if exc.status == 429 else None,
            ) from exc
        except requests.ConnectionError as exc:
            if _never_connected(exc):  # refused, no route, DNS, a connect timeout: nothing reached Twilio
                raise ProviderError(str(exc), code="twilio_unreachable", transient=True) from exc
            # Lost after the request went out: it may have been accepted. Never resend blindly.
            raise ProviderError(str(exc), code="outcome_unknown", transient=False) from exc
        except requests.Timeout as exc:
            # The request may have been accepted: the outcome is unknown, never resend blindly.
            raise ProviderError(str(exc), code="outcome_unknown", transient=False) from exc
