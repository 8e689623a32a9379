"""What a person does from an email link: unsubscribe in one click, resubscribe by double opt-in.

Every change is a ledger event with its evidence (the IP address and user
agent of the click); nothing here trusts anything but the signed token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from consentry.consent import ledger, tokens
from consentry.consent import services as consent
from consentry.consent.models import EmailState, ResubscribeRequest, Source
from consentry.errors import InvalidInput
from consentry.patients.addresses import normalize_email
from consentry.patients.models import Practice
from consentry.vocabulary import Channel, Kind

from .direct import create_direct_message


class UnknownPractice(Exception):
    """A genuine token for a practice that no longer exists here."""


@dataclass(frozen=True)
class Click:
    """Evidence of who clicked: kept in the ledger."""

    ip: str
    user_agent: str

    def evidence(self, **more) -> dict:
        return {"ip": self.ip, "user_agent": self.user_agent[:300], **more}


def _practice(practice_id) -> Practice:
    try:
        practice = Practice.objects.filter(pk=practice_id).first()
    except ValidationError:
        practice = None
    if practice is None:
        raise UnknownPractice(practice_id)
    return practice


def unsubscribe_target(token: str) -> tuple[Practice, str]:
    """The practice and address an unsubscribe link is for (``BadToken``, ``UnknownPractice``)."""
    practice_id, email = tokens.read_unsubscribe_token(token)
    return _practice(practice_id), email


def unsubscribe(token: str, click: Click, *, via: str) -> tuple[Practice, str]:
    """Unsubscribe the link's address from the practice's broadcast and marketing email. Idempotent.

    An address that bounces stays ``bounced``: it gets no email at all, which
    already includes what unsubscribing stops.
    """
    practice, email = unsubscribe_target(token)
    with transaction.atomic():
        if ledger.address_status(practice.pk, email).email == EmailState.SUBSCRIBED:
            consent.record_email_state(
                practice=practice,
                email=email,
                state=EmailState.UNSUBSCRIBED,
                source=Source.ONE_CLICK_UNSUBSCRIBE,
                actor=email,
                evidence=click.evidence(via=via),
            )
    return practice, email


class TooSoon(Exception):
    def __init__(self, retry_after: timedelta):
        super().__init__(
            f"a resubscribe email was sent to this address less than "
            f"{settings.CONSENTRY_RESUBSCRIBE_EVERY_HOURS:g} hours ago"
        )
        self.retry_after = retry_after


class NotUnsubscribed(Exception):
    """Only an unsubscribed address can be sent a resubscribe email."""


def resubscribe_email(practice: Practice, request: ResubscribeRequest) -> dict:
    url = tokens.public_url(f"/email/resubscribe/{tokens.resubscribe_token(request.pk, request.email)}")
    text = (
        f"You asked to get email from {practice.name} again.\n\n"
        f"To confirm, open this link and press Opt-In:\n{url}\n\n"
        "The link works for 7 days. If you did not ask for this, ignore this email: nothing changes."
    )
    html = (
        f"<p>You asked to get email from {{{{practice_name}}}} again.</p>"
        f'<p><a href="{url}" style="display:inline-block;padding:10px 18px;background:#1f6feb;color:#fff;'
        f'border-radius:4px;text-decoration:none;font-weight:600;">Opt-In</a></p>'
        "<p>The link works for 7 days. If you did not ask for this, ignore this email: nothing changes.</p>"
    )
    return {"subject": f"Confirm: email from {practice.name}", "text": text, "html": html}


def request_resubscribe(
    *, practice: Practice, email: str, actor: str, now: datetime | None = None
) -> ResubscribeRequest:
    """Send the double opt-in email to an unsubscribed address, at most once per address per 24 hours."""
    email = normalize_email(email, field="email")
    now = now or datetime.now(UTC)
    with transaction.atomic():
        state = ledger.address_status(practice.pk, email).email
        if state == EmailState.BOUNCED:
            raise InvalidInput("email", "this address bounces: correct it instead of resubscribing it")
        if state != EmailState.UNSUBSCRIBED:
            raise NotUnsubscribed(f"{email} is subscribed: there is nothing to opt back in to")
        every = timedelta(hours=settings.CONSENTRY_RESUBSCRIBE_EVERY_HOURS)
        last = (
            ResubscribeRequest.objects.select_for_update()
            .filter(practice=practice, email=email)
            .order_by("-created_at")
            .first()
        )
        if last is not None and last.created_at > now - every:
            raise TooSoon(last.created_at + every - now)
        request = ResubscribeRequest.objects.create(practice=practice, email=email, requested_by=actor)
        create_direct_message(
            practice=practice,
            kind=Kind.CONSENT_REQUEST,
            channel=Channel.EMAIL,
            address=email,
            content={"email": resubscribe_email(practice, request)},
            actor=actor,
        )
    return request


def resubscribe_target(token: str) -> ResubscribeRequest:
    """The request a resubscribe link confirms (``BadToken`` when altered or expired)."""
    request_id, email = tokens.read_resubscribe_token(token)
    request = ResubscribeRequest.objects.select_related("practice").filter(pk=request_id, email=email).first()
    if request is None:
        raise UnknownPractice(request_id)
    return request


def confirm_resubscribe(token: str, click: Click) -> ResubscribeRequest:
    """The person pressed Opt-In: the address is subscribed again. Idempotent."""
    request = resubscribe_target(token)
    with transaction.atomic():
        if ledger.address_status(request.practice_id, request.email).email == EmailState.UNSUBSCRIBED:
            consent.record_email_state(
                practice=request.practice,
                email=request.email,
                state=EmailState.SUBSCRIBED,
                source=Source.RESUBSCRIBE_CLICK,
                actor=request.email,
                evidence=click.evidence(resubscribe_request=request.pk, requested_by=request.requested_by),
            )
        if request.confirmed_at is None:
            request.confirmed_at = datetime.now(UTC)
            request.save(update_fields=["confirmed_at"])
    return request
