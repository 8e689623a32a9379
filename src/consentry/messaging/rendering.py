"""What a provider is handed: a delivery's content personalized for its recipient, in its channel's form."""

from __future__ import annotations

import json
from typing import Any, NamedTuple, Protocol

from consentry.patients.locations import TextingSender
from consentry.patients.models import Practice
from consentry.providers.base import Outbound
from consentry.vocabulary import Channel, Kind

from . import templating
from .categories import category_for
from .models import Message


class Addressed(Protocol):
    """What rendering reads of a delivery: the model, or the worker's columns-only ``Claimed``."""

    @property
    def pk(self) -> Any: ...
    @property
    def patient_id(self) -> Any: ...
    @property
    def channel(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def practice(self) -> Practice: ...
    @property
    def message(self) -> Message: ...


class Person(NamedTuple):
    """Who a delivery is for, as far as the personalization tokens go."""

    first_name: str
    last_name: str


def render(
    delivery: Addressed,
    category=None,
    content: dict | None = None,
    person=None,
    *,
    opt_out_hint: str = "",
    texting: TextingSender | None = None,
) -> Outbound:
    """What the provider is handed: the content personalized for this recipient, in its channel's form.

    ``person`` (first and last name) defaults to the delivery's patient. ``opt_out_hint`` ends a text
    (how to opt out: the dispatcher decides which texts carry it, see ``hints``). ``texting``: who a
    text or call goes from (its number and Messaging Service), when not simply the practice's number.
    """
    message, practice, channel = delivery.message, delivery.practice, delivery.channel
    person = person if person is not None or delivery.patient_id is None else getattr(delivery, "patient", None)
    content = json.loads(message.content) if content is None else content
    values = templating.values_for(practice, person)
    subject = html = ""
    headers: dict = {}
    if channel == Channel.EMAIL:
        category = category or category_for(practice, message.category)
        email = templating.email(
            practice,
            person,
            delivery.address,
            content["email"],
            with_unsubscribe=message.kind == Kind.BROADCAST or category.marketing,
            # The portal of the patient it is for; an opt-in email is for an address, which several may give.
            patient_id=delivery.patient_id if message.kind != Kind.CONSENT_REQUEST else None,
        )
        subject, body, html, headers = email.subject, email.text, email.html, email.headers
        sender = practice.email_sender
    elif channel == Channel.IN_APP:
        body = content.get("in_app") or content.get("sms") or content.get("email", {}).get("text", "")
        body = templating.personalize(body, values)
        subject = templating.personalize(content.get("email", {}).get("subject", ""), values)
        sender = practice.name
    else:
        body = templating.personalize(content[channel], values)
        if channel == Channel.SMS:
            body = templating.sms_text(practice, body, opt_out_hint)
        sender = practice.texting_number
    service = ""
    if texting is not None and channel in (Channel.SMS, Channel.VOICE):
        sender, service = texting.number, texting.messaging_service_sid
    return Outbound(
        practice_id=str(practice.pk),
        delivery_id=delivery.pk,
        channel=channel,
        to=delivery.address or str(delivery.patient_id),
        sender=sender,
        body=body,
        subject=subject,
        html=html,
        headers=headers,
        category=message.category,
        messaging_service_sid=service,
    )
