"""REST API v1: thin handlers that parse, call one service, and shape the answer."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Literal

from django.http import Http404
from ninja import Field, NinjaAPI, Schema, Status
from ninja.errors import ValidationError

from consentry.api.auth import ApiKeyAuth, actor_of, practice_of
from consentry.api.schemas import In
from consentry.consent import ledger
from consentry.consent import services as consent
from consentry.consent.models import Block, Source
from consentry.consent.rules import Channel, Kind, LineType, MarketingConsent, Reason
from consentry.consent.rules import Status as DeliveryStatus
from consentry.errors import InvalidInput
from consentry.messaging.models import Delivery, Message
from consentry.messaging.planning import REQUEST_KINDS, create_message
from consentry.patients.models import Category, ContactKind, Patient
from consentry.patients.services import (
    PhoneInput,
    create_category,
    create_patient,
    normalize_address,
    normalize_phone,
    set_notification_channels,
    update_patient,
)

api = NinjaAPI(
    title="Consentry",
    version="1",
    description="Consent-aware patient messaging. Every object belongs to the API key's practice.",
    auth=ApiKeyAuth(),
    urls_namespace="api-v1",
)


# The kinds of message a request may ask for (the others are the service's own: keyword replies, opt-in emails).
RequestKind = StrEnum("RequestKind", {kind.name: kind.value for kind in REQUEST_KINDS})


@api.exception_handler(ValidationError)
def invalid_request(request, exc: ValidationError):
    """Ninja's 422, with the ``field`` every other refusal names (``content.sms``, ``offset``)."""
    detail = []
    for error in exc.errors:
        loc = [str(part) for part in error.get("loc", ())]
        where = loc[2:] if loc[:1] == ["body"] else loc[1:]
        detail.append({**error, "field": ".".join(where) or "body"})
    return api.create_response(request, {"detail": detail}, status=422)


@api.exception_handler(InvalidInput)
def invalid_input(request, exc: InvalidInput):
    return api.create_response(
        request,
        {"detail": [{"type": "invalid", "field": exc.field, "loc": ["body", *exc.field.split(".")], "msg": exc.message}]},
        status=422,
    )



# --- patients --------------------------------------------------------------


class PhoneIn(In):
    number: str = Field(max_length=40)
    line_type: LineType = LineType.UNKNOWN


class PatientIn(In):
    first_name: str = Field(max_length=100)
    last_name: str = Field("", max_length=100)
    phones: list[PhoneIn] = Field(default_factory=list, max_length=20)
    emails: list[str] = Field(default_factory=list, max_length=20)
    preferred_phone: str | None = Field(None, max_length=40)
    do_not_contact: bool = False
    marketing_consent: MarketingConsent = MarketingConsent.UNKNOWN
    timezone: str = Field("", max_length=64)
    external_id: str = Field("", max_length=128)
    language: str = Field("en", max_length=16)
    notification_overrides: dict[str, dict[str, bool]] = Field(default_factory=dict)
    channel_opt_outs: list[str] = Field(default_factory=list, max_length=4)


class PatientPatch(In):
    """Only the fields sent change. ``preferred_phone: null`` clears the preference."""

    model_config = {"extra": "forbid"}
    preferred_phone: str | None = Field(None, max_length=40)
    do_not_contact: bool | None = None
    marketing_consent: MarketingConsent | None = None
    notification_overrides: dict[str, dict[str, bool]] | None = None
    channel_opt_outs: list[str] | None = Field(None, max_length=4)


class PhoneOut(Schema):
    number: str
    line_type: LineType
    valid: bool


class PatientOut(Schema):
    id: str
    first_name: str
    last_name: str
    phones: list[PhoneOut]
    emails: list[str]
    preferred_phone: str | None
    do_not_contact: bool
    marketing_consent: MarketingConsent
    timezone: str
    external_id: str
    notification_overrides: dict[str, dict[str, bool]]
    channel_opt_outs: list[str]


def _patient_out(patient: Patient) -> dict:
    points = [link.contact_point for link in patient.contacts.select_related("contact_point")]
    return {
        "id": str(patient.pk),
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "phones": [
            {"number": p.address, "line_type": p.line_type, "valid": p.valid} for p in points if p.kind == ContactKind.PHONE
        ],
        "emails": [p.address for p in points if p.kind == ContactKind.EMAIL],
        "preferred_phone": patient.preferred_phone.address if patient.preferred_phone_id else None,
        "do_not_contact": patient.do_not_contact,
        "marketing_consent": patient.marketing_consent,
        "timezone": patient.timezone,
        "external_id": patient.external_id,
        "notification_overrides": patient.notification_overrides,
        "channel_opt_outs": patient.channel_opt_outs,
    }


@api.post("/patients", response={201: PatientOut}, tags=["patients"])
def patients_create(request, payload: PatientIn):
    patient = create_patient(
        practice=practice_of(request),
        first_name=payload.first_name,
        last_name=payload.last_name,
        phones=[PhoneInput(p.number, p.line_type) for p in payload.phones],
        emails=payload.emails,
        preferred_phone=payload.preferred_phone,
        do_not_contact=payload.do_not_contact,
        marketing_consent=payload.marketing_consent,
        timezone=payload.timezone,
        external_id=payload.external_id,
        language=payload.language,
        notification_overrides=payload.notification_overrides,
        channel_opt_outs=payload.channel_opt_outs,
        source=Source.API,
        actor=actor_of(request),
    )
    return Status(201, _patient_out(patient))


@api.get("/patients/{patient_id}", response=PatientOut, tags=["patients"])
def patients_get(request, patient_id: str):
    return _patient_out(_get_patient(request, patient_id))


@api.patch("/patients/{patient_id}", response=PatientOut, tags=["patients"])
def patients_update(request, patient_id: str, payload: PatientPatch):
    sent = payload.model_fields_set
    patient = update_patient(
        patient=_get_patient(request, patient_id),
        preferred_phone=payload.preferred_phone,
        clear_preferred_phone="preferred_phone" in sent and payload.preferred_phone is None,
        do_not_contact=payload.do_not_contact,
        marketing_consent=payload.marketing_consent,
        notification_overrides=payload.notification_overrides,
        channel_opt_outs=payload.channel_opt_outs,
        source=Source.API,
        actor=actor_of(request),
    )
    return _patient_out(patient)


def _owned_or_404(model, request, object_id: str, **filters):
    """The practice's object with this id; anything else (malformed, foreign, absent) is a 404."""
    try:
        pk = uuid.UUID(object_id)
    except ValueError:
        raise Http404(f"no such {model._meta.verbose_name}") from None
    obj = model.objects.filter(practice=practice_of(request), pk=pk, **filters).first()
    if obj is None:
        raise Http404(f"no such {model._meta.verbose_name}")
    return obj


def _get_patient(request, patient_id: str) -> Patient:
    return _owned_or_404(Patient, request, patient_id)


# --- consent status and blocks ------------------------------------------------


class ContactStatusOut(Schema):
    address: str
    sms: Literal["opted_in", "opted_out"] | None
    email: Literal["subscribed", "unsubscribed", "bounced"] | None
    blocked_categories: list[str] | None


@api.get("/contacts/status", response=ContactStatusOut, tags=["consent"])
def contacts_status(request, address: str):
    practice = practice_of(request)
    normalized = normalize_address(address, region=practice.region, field="address")
    status = ledger.address_status(practice.pk, normalized)
    if "@" in normalized:
        return {"address": normalized, "sms": None, "email": status.email, "blocked_categories": None}
    return {"address": normalized, "sms": status.sms, "email": None, "blocked_categories": status.blocked_categories}


class BlockIn(In):
    number: str = Field(max_length=40)
    categories: list[str] = Field(max_length=100)


class BlockCategoriesIn(In):
    categories: list[str] = Field(max_length=100)


class BlockOut(Schema):
    number: str
    categories: list[str]


def _set_block(request, number: str, categories: list[str]) -> dict:
    practice = practice_of(request)
    normalized = normalize_phone(number, region=practice.region, field="number").number
    consent.set_block(
        practice=practice, number=normalized, categories=categories, source=Source.API, actor=actor_of(request),
        evidence={"via": "api"},
    )
    return {"number": normalized, "categories": sorted(set(categories))}


@api.get("/blocks", response=list[BlockOut], tags=["consent"])
def blocks_list(request):
    return [
        {"number": n, "categories": c}
        for n, c in Block.objects.filter(practice=practice_of(request)).order_by("number").values_list("number", "categories")
    ]


@api.post("/blocks", response={201: BlockOut}, tags=["consent"])
def blocks_create(request, payload: BlockIn):
    return Status(201, _set_block(request, payload.number, payload.categories))


@api.put("/blocks/{number}", response=BlockOut, tags=["consent"])
def blocks_update(request, number: str, payload: BlockCategoriesIn):
    return _set_block(request, number, payload.categories)


@api.delete("/blocks/{number}", response={204: None}, tags=["consent"])
def blocks_delete(request, number: str):
    practice = practice_of(request)
    normalized = normalize_phone(number, region=practice.region, field="number").number
    if not Block.objects.filter(practice=practice, number=normalized).exists():
        raise Http404("that number is not blocked")
    _set_block(request, normalized, [])
    return Status(204, None)


# --- categories and the notification grid ---------------------------------------


class CategoryOut(Schema):
    key: str
    marketing: bool
    notification_channels: list[str]
    patient_can_disable: bool
    quiet_hours_exempt: bool


class CategoryIn(In):
    key: str = Field(max_length=64)
    marketing: bool = False
    notification_channels: list[str] = Field(default_factory=list, max_length=4)


class CategoryGridIn(In):
    notification_channels: list[str] = Field(max_length=4)
    quiet_hours_exempt: bool | None = None


def _category_out(c: Category) -> dict:
    return {"key": c.key, "marketing": c.marketing, "notification_channels": c.notification_channels,
            "patient_can_disable": c.patient_can_disable, "quiet_hours_exempt": c.quiet_hours_exempt}


@api.get("/categories", response=list[CategoryOut], tags=["categories"])
def categories_list(request):
    return [_category_out(c) for c in Category.objects.filter(practice=practice_of(request)).order_by("pk")]


@api.post("/categories", response={201: CategoryOut}, tags=["categories"])
def categories_create(request, payload: CategoryIn):
    category = create_category(practice=practice_of(request), key=payload.key, marketing=payload.marketing,
                               notification_channels=payload.notification_channels)
    return Status(201, _category_out(category))


@api.put("/categories/{key}", response=CategoryOut, tags=["categories"])
def categories_update(request, key: str, payload: CategoryGridIn):
    category = Category.objects.filter(practice=practice_of(request), key=key).first()
    if category is None:
        raise Http404("no such category")
    return _category_out(set_notification_channels(
        category=category, notification_channels=payload.notification_channels,
        quiet_hours_exempt=payload.quiet_hours_exempt,
    ))


# --- messages --------------------------------------------------------------


class EmailContent(In):
    subject: str = ""
    text: str = ""
    html: str = ""


class ContentIn(In):
    model_config = {"extra": "forbid"}
    sms: str | None = None
    voice: str | None = None
    email: EmailContent | None = None
    in_app: str | None = None


class MessageIn(In):
    kind: RequestKind
    category: str
    patient_ids: list[str] = Field(min_length=1, max_length=200_000)
    content: ContentIn


class DeliveryOut(Schema):
    patient_id: str | None
    channel: Channel
    address: str | None
    status: DeliveryStatus
    reason: Reason | None
    not_before: str | None = None  # not sent before (UTC, ISO 8601): quiet hours, a backoff, the sender's pace


class MessageOut(Schema):
    id: str
    kind: Kind
    category: str
    created_at: str
    deliveries: list[DeliveryOut]
    warnings: dict[str, list[str]] = Field(default_factory=dict)


def _deliveries_out(rows) -> list[dict]:
    return [
        {
            "patient_id": str(patient_id) if patient_id else None,
            "channel": channel,
            "address": address or None,
            "status": status,
            "reason": reason or None,
            "not_before": not_before.isoformat() if not_before else None,
        }
        for patient_id, channel, address, status, reason, not_before in rows
    ]


def _message_out(message: Message, rows, warnings=None) -> dict:
    return {
        "id": str(message.pk),
        "kind": message.kind,
        "category": message.category,
        "created_at": message.created_at.isoformat(),
        "deliveries": _deliveries_out(rows),
        "warnings": warnings or {},
    }


DELIVERY_FIELDS = ("patient_id", "channel", "address", "status", "reason", "not_before")


@api.post("/messages", response={202: MessageOut}, tags=["messages"])
def messages_create(request, payload: MessageIn):
    """Send a message. An ``Idempotency-Key`` header makes a retried request safe:
    the same key and body answer with the first message, never a second send."""
    content = payload.content.model_dump(exclude_none=True)
    planned = create_message(
        practice=practice_of(request),
        kind=payload.kind,
        category=payload.category,
        patient_ids=payload.patient_ids,
        content=content,
        actor=actor_of(request),
        idempotency_key=request.headers.get("Idempotency-Key", "").strip(),
    )
    rows = [tuple(getattr(d, f) for f in DELIVERY_FIELDS) for d in planned.deliveries]
    return Status(202, _message_out(planned.message, rows, planned.warnings))


@api.get("/messages/{message_id}", response=MessageOut, tags=["messages"])
def messages_get(request, message_id: str):
    message = _owned_or_404(Message, request, message_id)
    if message.kind in ("keyword_reply", "consent_request"):  # the service's own messages
        raise Http404("no such message")
    rows = Delivery.objects.filter(message=message).order_by("pk").values_list(*DELIVERY_FIELDS)
    return _message_out(message, rows)


api.add_router("/conversations", "consentry.api.conversations.router")
api.add_router("/contacts", "consentry.api.contacts.router")
api.add_router("/practice", "consentry.api.practice.router")
api.add_router("", "consentry.api.push.router")
api.add_router("", "consentry.api.self_service.router")
