"""The one narrow interface every provider implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from consentry.vocabulary import Status


@dataclass(frozen=True)
class Outbound:
    practice_id: str
    delivery_id: int
    channel: str
    to: str
    sender: str
    body: str
    subject: str = ""
    html: str = ""
    # Extra email headers (List-Unsubscribe, List-Unsubscribe-Post).
    headers: dict = field(default_factory=dict)
    category: str = ""  # the message's category (in-app notices keep it for the portal)
    # Texts: the Twilio Messaging Service they go through (the sender's location's), with ``sender`` as From.
    messaging_service_sid: str = ""


@dataclass(frozen=True)
class InboundText:
    """A text a phone sent to a practice, as any provider's webhook hands it over (verified)."""

    # The practice whose number was texted: a Practice, or the webhook's ``patients.locations.Route`` (storing
    # the text reads its pk, region, keyword_languages and reasonable_means).
    practice: Any
    from_number: str
    to_number: str
    body: str
    provider: str
    provider_ref: str  # the provider's message id: a repeated webhook is a replay


@dataclass(frozen=True)
class StatusReport:
    """What a provider reports about a message it took (verified)."""

    provider_ref: str
    status: Status | None  # in our words; None for a status of theirs that moves nothing
    provider_status: str  # in theirs, kept in the delivery's history
    error_code: str = ""


@dataclass(frozen=True)
class SendResult:
    provider_ref: str
    # "sent" (handed over; a status callback will follow) or "delivered".
    status: str


class ProviderError(Exception):
    """``bounce``: the receiving mail server refused the address itself for good (evidence: its code and reply).
    ``retry_after``: seconds the provider asked the sender to wait (a 429's Retry-After)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        transient: bool = False,
        bounce: dict | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.transient = transient
        self.bounce = bounce
        self.retry_after = retry_after


class Provider(Protocol):
    """Constructed with the practice it sends for; ``send`` hands over one message.

    ``send`` returns the provider's id for the message, or raises
    ``ProviderError`` (``transient=True`` when trying again later may work).
    """

    name: str
    channels: frozenset[str]  # what it can carry: "sms", "voice", "email", "in_app"
    # Optional: ``status_callbacks = True`` when the provider reports later by
    # the id ``send`` returned (the dispatcher then stores it before the next
    # send); ``default_rate``, messages per second a sender may hand over.

    def __init__(self, practice) -> None: ...

    def send(self, message: Outbound) -> SendResult: ...


# Provider names a practice (or the CONSENTRY_PROVIDER default) may choose.
PROVIDERS = {
    "sandbox": "consentry.providers.sandbox.SandboxProvider",
    "twilio": "consentry.providers.twilio.TwilioProvider",
    "smtp": "consentry.providers.email.EmailProvider",
    "anymail": "consentry.providers.email.AnymailProvider",
    "in_app": "consentry.providers.inapp.InAppProvider",
}


def provider_name(practice, channel: str) -> str:
    if channel == "in_app":
        return "in_app"  # the portal's own store (and Web Push)
    chosen = practice.email_provider if channel == "email" else practice.sms_provider
    return chosen or settings.CONSENTRY_PROVIDER


def provider_for(practice, channel: str) -> Provider:
    """The provider that carries ``channel`` for this practice, built with its credentials."""
    name = provider_name(practice, channel)
    if name not in PROVIDERS:
        raise ProviderError(f"unknown provider {name!r}", code="provider_unknown")
    provider_class = import_string(PROVIDERS[name])
    if channel not in provider_class.channels:
        # e.g. CONSENTRY_PROVIDER=twilio with no email provider chosen: fail
        # the delivery with a clear code rather than hand email to a phone API.
        raise ProviderError(f"provider {name!r} cannot send {channel}", code="provider_channel_unsupported")
    return provider_class(practice)
