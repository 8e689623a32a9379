"""Messages to one address rather than to patients: keyword replies, opt-in emails, staff texts."""

from __future__ import annotations

import json

from django.db import transaction

from consentry.patients.models import PatientContact, Practice
from consentry.vocabulary import Channel, Kind

from .models import Delivery, Message
from .tasks import enqueue_dispatch


def create_direct_message(
    *,
    practice: Practice,
    kind: Kind,
    channel: Channel,
    address: str,
    content: dict,
    actor: str,
    category: str = "system",
    from_number: str = "",
) -> Delivery:
    """One message to one address (not to patients), through the normal delivery path.

    The delivery is linked to the earliest patient with that address, if any,
    for the personalization tokens and the patient's history. ``from_number``:
    the practice's number a text goes from (the number the person texted), when
    not the patient's location's.
    """
    with transaction.atomic():
        message = Message.objects.create(
            practice=practice,
            kind=kind,
            category=category,
            content=json.dumps(content),
            actor=actor,
        )
        patient_id = (
            PatientContact.objects.filter(contact_point__practice=practice, contact_point__address=address)
            .order_by("patient__created_at")
            .values_list("patient_id", flat=True)
            .first()
        )
        delivery = Delivery.objects.create(
            message=message,
            practice=practice,
            patient_id=patient_id,
            channel=channel,
            address=address,
            from_number=from_number,
        )
        enqueue_dispatch([delivery.pk])
    return delivery


def create_keyword_reply(*, practice: Practice, number: str, body: str, actor: str, from_number: str = "") -> Delivery:
    """The confirmation or HELP text that answers a keyword, through the normal delivery path, from
    ``from_number`` (the number that was texted).

    Its kind exempts it from the opt-out it confirms (CTIA: one confirmation
    after an opt-out is allowed, and expected).
    """
    return create_direct_message(
        practice=practice,
        kind=Kind.KEYWORD_REPLY,
        channel=Channel.SMS,
        address=number,
        content={"sms": body},
        actor=actor,
        from_number=from_number,
    )
