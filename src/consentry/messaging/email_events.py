"""What comes back from email: ESP tracking events, and mail to the unsubscribe mailbox.

django-anymail's webhook views parse each ESP's events (SendGrid's event
webhook, its Inbound Parse, and the other ESPs anymail knows) and check the
request's HTTP basic auth (``ANYMAIL["WEBHOOK_SECRET"]``) or, for SendGrid,
its signature. They answer at ``/webhooks/anymail/<esp>/tracking/`` and
``/webhooks/anymail/<esp>/inbound/``; the receivers here act on what they send:

- delivered → the delivery is delivered; bounced (hard), rejected, failed →
  failed with the ESP's reason, and a hard bounce makes the address
  ``bounced``; deferred → the delivery's history only;
- a spam complaint or an ESP unsubscribe → the address is ``unsubscribed``;
- mail whose subject carries one of our unsubscribe tokens (the mailto: of
  List-Unsubscribe) → that address is ``unsubscribed``.

An event for a message we did not send is logged and answered 200 (the ESP
must not retry it for ever). An event seen before changes nothing again.

Anymail itself accepts every request when no secret is set (it only warns):
here such a webhook refuses every request with 403 until one is set, and a
body anymail cannot parse is a 400, not a 500.
"""

from __future__ import annotations

import logging

from anymail.signals import EventType, inbound, tracking
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.db import transaction
from django.urls import URLPattern

from consentry.consent import tokens
from consentry.consent.models import ConsentEvent, EmailState, Source
from consentry.consent.services import record_email_state
from consentry.patients.models import Practice
from consentry.text import scrub
from consentry.vocabulary import Channel, Status

from .models import Delivery, DeliveryEvent
from .status import move, record_email_bounce

log = logging.getLogger("consentry.email_events")

# Anymail's normalized event types that end a delivery.
FAILED_EVENTS = {EventType.BOUNCED, EventType.REJECTED, EventType.FAILED}
# ... and those that unsubscribe the address.
UNSUBSCRIBE_EVENTS = {EventType.COMPLAINED, EventType.UNSUBSCRIBED}
HANDLED_EVENTS = FAILED_EVENTS | UNSUBSCRIBE_EVENTS | {EventType.DELIVERED, EventType.DEFERRED}
TEXT_MAX = 300


def _text(value) -> str:
    """An ESP's text, on one line, shortened, scrubbed of what cannot be stored (the ESP cannot be asked again)."""
    text = " ".join(scrub(str(value or "")).split())
    return text if len(text) <= TEXT_MAX else text[: TEXT_MAX - 1] + "…"


# --- the webhook views ------------------------------------------------------------------------------------------


class MalformedWebhook(SuspiciousOperation):
    """A webhook body the ESP's parser cannot read (Django answers 400)."""


class _Secured:
    """Put before an anymail webhook view: refuse unless a secret or a signature key is configured."""

    refusal = ""

    def __init__(self, **kwargs):
        try:
            super().__init__(**kwargs)
        except ValueError as exc:  # a SendGrid verification key that is no public key
            self.refusal = f"the {self.esp_name} webhook verification key cannot be read: {exc}"
            self.validators = [_Secured.validate_request]
            return
        if not self.basic_auth and not getattr(self, "webhook_verification_key", None):
            self.refusal = (
                f"{self.esp_name} webhooks are refused until CONSENTRY_ANYMAIL_WEBHOOK_SECRET is set "
                "(HTTP basic auth, user:password, in the URL given to the ESP)"
            )

    def validate_request(self, request):  # anymail runs every validate_request in the class chain, this one first
        if self.refusal:
            log.error("%s webhook refused: %s", self.esp_name, self.refusal)
            raise PermissionDenied(self.refusal)

    def parse_events(self, request):
        try:
            return super().parse_events(request)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError, OSError) as exc:
            # Parsing only (no I/O): e.g. not JSON, a field missing, a timestamp out of range.
            raise MalformedWebhook(f"{self.esp_name} webhook body cannot be read: {exc!r}") from exc


def webhook_urls():
    """anymail's webhook URLs (``anymail.urls``), each view refusing to run without a secret."""
    from anymail import urls

    patterns = []
    for pattern in urls.urlpatterns:
        view_class = pattern.callback.view_class
        secured = type(view_class.__name__, (_Secured, view_class), {"__module__": __name__})
        patterns.append(URLPattern(pattern.pattern, secured.as_view(), pattern.default_args, pattern.name))
    return patterns, urls.app_name


# --- tracking ---------------------------------------------------------------------------------------------------


def on_tracking(sender, event, esp_name, **kwargs) -> None:
    if event.event_type not in HANDLED_EVENTS:
        return  # queued, sent, opened, clicked...: nothing for us
    message_id = scrub(event.message_id)
    delivery = None
    if isinstance(message_id, str) and message_id:
        delivery = Delivery.objects.filter(provider_ref=message_id, channel=Channel.EMAIL).order_by("pk").first()
    if delivery is None:
        log.warning(
            "%s %s event %s for an unknown message %r: ignored", esp_name, event.event_type, event.event_id, message_id
        )
        return
    apply_tracking_event(delivery, event, esp_name)


@transaction.atomic
def apply_tracking_event(delivery: Delivery, event, esp_name: str) -> None:
    delivery = Delivery.objects.select_for_update().select_related("practice").get(pk=delivery.pk)
    kind = event.event_type
    provider_status = kind
    if kind == EventType.DEFERRED and isinstance(event.esp_event, dict) and event.esp_event.get("attempt"):
        provider_status = _text(f"deferred #{event.esp_event['attempt']}")[:32]
    error_code = _text(event.reject_reason)[:32]
    status = Status.DELIVERED if kind == EventType.DELIVERED else Status.FAILED if kind in FAILED_EVENTS else None
    # An ESP sends an event again when it did not hear our answer: the same
    # event leaves the same row in the history, so a row already there means
    # there is nothing left to do.
    if DeliveryEvent.objects.filter(
        delivery=delivery, status=status or delivery.status, provider_status=provider_status, error_code=error_code
    ).exists():
        return
    event_id = scrub(event.event_id)
    if _already_recorded(delivery, event_id):
        return
    detail = _text(event.description or event.mta_response or event.reject_reason)
    evidence = {
        "esp": esp_name,
        "esp_event_id": event_id,
        "event": kind,
        "reason": detail,
        "mta_response": _text(event.mta_response),
    }
    if kind == EventType.BOUNCED and not _soft(event):
        record_email_bounce(delivery, source=Source.ESP_WEBHOOK, actor=esp_name, evidence=evidence)
    elif kind in UNSUBSCRIBE_EVENTS:
        record_email_state(
            practice=delivery.practice,
            email=delivery.address,
            state=EmailState.UNSUBSCRIBED,
            source=Source.ESP_WEBHOOK,
            actor=esp_name,
            evidence={
                **evidence,
                "complaint": kind == EventType.COMPLAINED,
                "delivery_id": delivery.pk,
                "provider_ref": delivery.provider_ref,
            },
        )
    if status is None:  # deferred, complained, unsubscribed: the delivery's history only
        move(delivery, Status(delivery.status), provider_status=provider_status, error_code=error_code)
    else:
        move(
            delivery,
            status,
            provider_status=provider_status,
            error_code=error_code,
            error=f"{kind}: {detail}" if status == Status.FAILED else "",
        )


def _soft(event) -> bool:
    """SendGrid reports a receiving server's block (reputation, content) as a bounce of type "blocked":
    the message failed, but nothing says the address is bad."""
    return isinstance(event.esp_event, dict) and event.esp_event.get("type") == "blocked"


def _already_recorded(delivery: Delivery, event_id) -> bool:
    if not event_id:
        return False
    return ConsentEvent.objects.filter(
        practice_id=delivery.practice_id, address=delivery.address, evidence__esp_event_id=event_id
    ).exists()


# --- the unsubscribe mailbox ------------------------------------------------------------------------------------


def unsubscribe_by_mail(*, sender: str, subject: str) -> ConsentEvent | None:
    """Mail to the unsubscribe mailbox: the token in its subject unsubscribes the address it was made for.

    A missing, altered or foreign token changes nothing. Returns the ledger
    event, or None when nothing changed.
    """
    try:
        practice_id, email = tokens.read_unsubscribe_token(tokens.token_from_mail_subject(subject))
    except tokens.BadToken as exc:
        log.warning("mail to the unsubscribe mailbox without a valid token: %s", exc)
        return None
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        log.warning("unsubscribe mail for practice %s, which is no longer here: ignored", practice_id)
        return None
    return record_email_state(
        practice=practice,
        email=email,
        state=EmailState.UNSUBSCRIBED,
        source=Source.MAILTO_UNSUBSCRIBE,
        actor=email,
        evidence={"from": _text(sender)},
        note=" ".join(str(subject).split())[:2100],
    )


def on_inbound(sender, event, esp_name, **kwargs) -> None:
    message = event.message
    if message is None:
        return
    sender_address = message.from_email
    if isinstance(sender_address, list):  # several From addresses: rare, and legal
        sender_address = sender_address[0] if sender_address else None
    unsubscribe_by_mail(
        sender=sender_address.addr_spec if sender_address else (message.envelope_sender or ""),
        subject=scrub(message.subject or ""),
    )


def connect() -> None:
    tracking.connect(on_tracking, dispatch_uid="consentry.email_events.tracking")
    inbound.connect(on_inbound, dispatch_uid="consentry.email_events.inbound")
