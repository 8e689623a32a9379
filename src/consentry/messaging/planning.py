"""Turn a message request into deliveries: validate, decide per recipient, write, enqueue.

Recipients are planned in chunks with a fixed number of set-based queries per
chunk (patients, their contact points, the consent of those addresses), never
one query per recipient, so a 100,000-patient broadcast costs a few hundred
queries. The deliveries and their dispatch tasks are written in the same
transaction as the message: either all of it exists or none of it does.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Iterable, Sequence

from django.conf import settings
from django.db import transaction

from consentry.consent import ledger
from consentry.consent.rules import (
    Category,
    Channel,
    Decision,
    Kind,
    LineType,
    MarketingConsent,
    Phone,
    Recipient,
    SendRequest,
    Status,
    decide,
)
from consentry.patients.models import Category as CategoryRow
from consentry.patients.models import ContactKind, Patient, PatientContact, Practice
from consentry.patients.services import InvalidInput

from .models import Delivery, Message

PLAN_CHUNK = 2000
REQUEST_KINDS = (Kind.AUTOMATION, Kind.BROADCAST, Kind.MANUAL, Kind.NOTIFICATION)
MAX_SMS_CHARS = 1600  # Twilio's limit for one message body
MAX_TEXT_CHARS = 100_000


def category_for(practice: Practice, key: str) -> Category:
    row = CategoryRow.objects.filter(practice=practice, key=key).first()
    if row is None:
        raise InvalidInput("category", f"unknown category {key!r}")
    return category_from_row(row)


def category_from_row(row: CategoryRow) -> Category:
    return Category(
        key=row.key,
        marketing=row.marketing,
        notification_channels=frozenset(Channel(c) for c in row.notification_channels),
        patient_can_disable=row.patient_can_disable,
    )


def clean_content(kind: Kind, content: dict) -> tuple[dict, frozenset[Channel]]:
    """Validate the content and return it with the channels it can be sent on."""
    if not isinstance(content, dict):
        raise InvalidInput("content", "must be an object with sms, voice and/or email")
    cleaned: dict = {}
    for key in ("sms", "voice", "in_app"):
        value = content.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"content.{key}", "must be text")
        if value.strip():
            limit = MAX_SMS_CHARS if key == "sms" else MAX_TEXT_CHARS
            if len(value) > limit:
                raise InvalidInput(f"content.{key}", f"is longer than {limit} characters")
            cleaned[key] = value
    email = content.get("email")
    if email is not None:
        if not isinstance(email, dict):
            raise InvalidInput("content.email", "must be an object with subject, text and html")
        subject, text, html = (email.get(k) or "" for k in ("subject", "text", "html"))
        if not all(isinstance(v, str) for v in (subject, text, html)):
            raise InvalidInput("content.email", "subject, text and html must be text")
        if text.strip() or html.strip():
            if not subject.strip():
                raise InvalidInput("content.email.subject", "an email needs a subject")
            if max(len(subject), len(text), len(html)) > MAX_TEXT_CHARS:
                raise InvalidInput("content.email", f"is longer than {MAX_TEXT_CHARS} characters")
            cleaned["email"] = {"subject": subject, "text": text, "html": html}
    unknown = set(content) - {"sms", "voice", "email", "in_app"}
    if unknown:
        raise InvalidInput("content", f"unknown channel(s): {', '.join(sorted(unknown))}")
    if not cleaned:
        raise InvalidInput("content", "no content for any channel: write sms, voice or email content")
    if "in_app" in cleaned and kind != Kind.NOTIFICATION:
        raise InvalidInput("content.in_app", "in-app content is only for notifications")
    channels = {Channel(k) for k in cleaned}
    if kind == Kind.NOTIFICATION and cleaned.keys() - {"voice"}:
        # The portal shows a notification's own in-app text, else its text or email.
        channels.add(Channel.IN_APP)
    return cleaned, frozenset(channels)


@dataclass(frozen=True)
class PlannedMessage:
    message: Message
    deliveries: list[Delivery]
    warnings: dict[str, list[str]]


def create_message(
    *,
    practice: Practice,
    kind: str,
    category: str,
    patient_ids: Sequence,
    content: dict,
    actor: str = "api",
    now: datetime | None = None,
) -> PlannedMessage:
    """Plan and store a message to these patients; every input is checked before any write."""
    try:
        kind = Kind(kind)
    except ValueError:
        raise InvalidInput("kind", f"must be one of {', '.join(k.value for k in REQUEST_KINDS)}") from None
    if kind not in REQUEST_KINDS:
        raise InvalidInput("kind", f"must be one of {', '.join(k.value for k in REQUEST_KINDS)}")
    category_value = category_for(practice, category)
    cleaned, channels = clean_content(kind, content)
    ids = _unique_patient_ids(practice, patient_ids)
    request = SendRequest(kind=kind, category=category_value, content_channels=channels)
    now = now or datetime.now(UTC)

    with transaction.atomic():
        message = Message.objects.create(
            practice=practice, kind=kind, category=category_value.key, content=json.dumps(cleaned), actor=actor
        )
        deliveries: list[Delivery] = []
        warnings: dict[str, list[str]] = {}
        for start in range(0, len(ids), PLAN_CHUNK):
            chunk = ids[start : start + PLAN_CHUNK]
            recipients = load_recipients(practice, chunk, category_value.key)
            state = ledger.consent_state(
                practice.pk,
                (a for r in recipients for a in (*(p.number for p in r.phones), *r.emails)),
            )
            rows = []
            for recipient in recipients:
                decision = decide(request, recipient, state, now)
                if decision.warnings:
                    warnings[str(recipient.patient_id)] = [str(w) for w in decision.warnings]
                rows.extend(_delivery_rows(message, practice, decision))
            deliveries.extend(Delivery.objects.bulk_create(rows, batch_size=500))
        enqueue_dispatch([d.pk for d in deliveries if d.status == Status.PENDING])
    return PlannedMessage(message, deliveries, warnings)


def _unique_patient_ids(practice: Practice, patient_ids: Sequence) -> list[str]:
    if not isinstance(patient_ids, (list, tuple)) or not patient_ids:
        raise InvalidInput("patient_ids", "at least one patient id is required")
    ids = list(dict.fromkeys(str(p) for p in patient_ids))
    found: set[str] = set()
    for start in range(0, len(ids), PLAN_CHUNK):
        chunk = ids[start : start + PLAN_CHUNK]
        found.update(
            str(pk) for pk in Patient.objects.filter(practice=practice, pk__in=_valid_uuids(chunk)).values_list("pk", flat=True)
        )
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InvalidInput("patient_ids", f"{len(missing)} unknown patient(s): {shown}")
    return ids


def _valid_uuids(values: Iterable[str]) -> list[str]:
    out = []
    for v in values:
        try:
            out.append(str(uuid.UUID(v)))
        except ValueError:
            continue
    return out


def load_recipients(practice: Practice, patient_ids: Sequence[str], category_key: str) -> list[Recipient]:
    """Everything ``decide()`` needs about these patients, in three queries."""
    patients = list(
        Patient.objects.filter(practice=practice, pk__in=patient_ids).values_list(
            "pk", "do_not_contact", "marketing_consent", "preferred_phone__address",
            "channel_opt_outs", "notification_overrides",
        )
    )
    phones: dict = {}
    emails: dict = {}
    for patient_id, address, kind, line_type, valid in (
        PatientContact.objects.filter(patient_id__in=patient_ids)
        .order_by("patient_id", "position")
        .values_list("patient_id", "contact_point__address", "contact_point__kind",
                     "contact_point__line_type", "contact_point__valid")
    ):
        if kind == ContactKind.PHONE:
            phones.setdefault(patient_id, []).append(Phone(address, LineType(line_type), valid))
        else:
            emails.setdefault(patient_id, []).append(address)
    recipients = []
    for pk, dnc, marketing, preferred, opt_outs, overrides in patients:
        type_overrides = (overrides or {}).get(category_key) or {}
        recipients.append(
            Recipient(
                patient_id=pk,
                phones=tuple(phones.get(pk, ())),
                emails=tuple(emails.get(pk, ())),
                preferred_phone=preferred,
                do_not_contact=dnc,
                marketing_consent=MarketingConsent(marketing),
                channel_opt_outs=frozenset(Channel(c) for c in opt_outs or ()),
                notification_overrides={(category_key, Channel(c)): bool(v) for c, v in type_overrides.items()},
            )
        )
    return recipients


def _delivery_rows(message: Message, practice: Practice, decision: Decision) -> Iterable[Delivery]:
    for planned in decision.deliveries:
        yield Delivery(
            message=message,
            practice=practice,
            patient_id=decision.patient_id,
            channel=planned.channel,
            address=planned.address or "",
            status=planned.status,
            reason=planned.reason or "",
        )


def enqueue_dispatch(delivery_ids: list[int]) -> None:
    """One dispatch task per batch of deliveries, written in the caller's transaction."""
    from .tasks import dispatch_deliveries

    size = settings.CONSENTRY_DISPATCH_BATCH
    for start in range(0, len(delivery_ids), size):
        dispatch_deliveries.enqueue(delivery_ids[start : start + size])


def create_keyword_reply(*, practice: Practice, number: str, body: str, actor: str) -> Delivery:
    """The confirmation or HELP text that answers a keyword, through the normal delivery path.

    Its kind exempts it from the opt-out it confirms (CTIA: one confirmation
    after an opt-out is allowed, and expected).
    """
    with transaction.atomic():
        message = Message.objects.create(
            practice=practice, kind=Kind.KEYWORD_REPLY, category="system",
            content=json.dumps({"sms": body}), actor=actor,
        )
        patient_id = (
            PatientContact.objects.filter(contact_point__practice=practice, contact_point__address=number)
            .order_by("patient__created_at").values_list("patient_id", flat=True).first()
        )
        delivery = Delivery.objects.create(
            message=message, practice=practice, patient_id=patient_id, channel=Channel.SMS, address=number
        )
        enqueue_dispatch([delivery.pk])
    return delivery
