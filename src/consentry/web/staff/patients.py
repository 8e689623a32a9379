"""Patients: the list and its search, the facesheet (addresses with their icons, history, consent
timeline), and the opt-in email staff may send for an unsubscribed address."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from itertools import chain

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from consentry.accounts.selectors import actor_names
from consentry.consent.models import Source
from consentry.consent.selectors import (
    MarkCode,
    address_cards,
    consent_timeline,
    next_opt_in_email_at,
)
from consentry.errors import InvalidInput
from consentry.messaging.selectors import patient_deliveries
from consentry.messaging.self_service import NotUnsubscribed, TooSoon, request_resubscribe
from consentry.patients.models import Category, Location, Patient, PatientContact
from consentry.records.selectors import patient_points, search_patients, sharing
from consentry.records.services import PhoneInput, update_patient

from .access import page_number, staff_page


@staff_page
def patient_list(request: HttpRequest) -> HttpResponse:
    practice = request.staff.practice  # type: ignore[attr-defined]
    q = request.GET.get("q", "")
    found = search_patients(practice, q, page=page_number(request.GET.get("page")))
    links = (
        PatientContact.objects.filter(patient__in=found.patients)
        .select_related("contact_point")
        .order_by("position", "pk")
    )
    points: dict[uuid.UUID, list] = {p.pk: [] for p in found.patients}
    for link in links:
        points[link.patient_id].append(link.contact_point)
    cards = {c.point.pk: c for c in address_cards(practice.pk, list(chain(*points.values())), explain=False)}
    rows = [(patient, [cards[point.pk] for point in points[patient.pk]]) for patient in found.patients]
    context = {"nav": "patients", "q": q, "found": found, "rows": rows}
    template = "staff/_patient_rows.html" if request.htmx else "staff/patients.html"  # type: ignore[attr-defined]
    return render(request, template, context)


def _patient(request: HttpRequest, patient_id: uuid.UUID) -> Patient:
    """The patient, at the practice the user is working at: another practice's is a 404."""
    return get_object_or_404(Patient, pk=patient_id, practice=request.staff.practice)  # type: ignore[attr-defined]


@staff_page
def patient_detail(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    practice = request.staff.practice  # type: ignore[attr-defined]
    patient = _patient(request, patient_id)
    points = patient_points(patient)
    cards = address_cards(practice.pk, points)
    now = datetime.now(UTC)
    next_email = {
        card.point.address: next_opt_in_email_at(practice.pk, card.point.address, now)
        for card in cards
        if any(m.code == MarkCode.EMAIL_UNSUBSCRIBED for m in card.marks)
    }
    deliveries = patient_deliveries(practice, patient.pk)
    timeline = consent_timeline(practice.pk, [p.address for p in points])
    names = actor_names(chain((e.actor for e in timeline), (d.message.actor for d in deliveries)))
    return render(
        request,
        "staff/patient.html",
        {
            "nav": "patients",
            "patient": patient,
            "cards": cards,
            "shared": sharing(practice, points, but=patient),
            "next_email": next_email,
            "deliveries": deliveries,
            "timeline": timeline,
            "names": names,
        },
    )


@require_POST
@staff_page
def send_opt_in_email(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    """Email the patient's unsubscribed address the link to opt back in (the patient decides)."""
    staff = request.staff  # type: ignore[attr-defined]
    patient = _patient(request, patient_id)
    email = request.POST.get("email", "")
    if email not in {p.address for p in patient_points(patient)}:
        raise Http404("not one of this patient's addresses")
    try:
        request_resubscribe(practice=staff.practice, email=email, actor=staff.actor)
    except TooSoon as exc:
        messages.error(request, f"Not sent: {exc}.")
    except (NotUnsubscribed, InvalidInput) as exc:
        messages.error(request, f"Not sent: {exc}.")
    else:
        messages.success(request, f"Opt-in email sent to {email}. The patient opts back in by pressing its button.")
    return redirect("staff-patient", patient_id=patient.pk)


NEW_ROWS = 2  # blank rows to add an address with
NOTIFY_CHANNELS = ("in_app", "sms", "voice", "email")
OPT_OUT_CHANNELS = ("sms", "voice", "email")


def _edit_rows(request: HttpRequest, patient: Patient) -> tuple[list[dict], list[dict]]:
    """The phone and email rows of the form: as posted, else as the patient has them (plus blank rows)."""
    if request.method == "POST":
        post = request.POST
        phones = [
            {"number": post.get(f"phone-{i}-number", ""), "line_type": post.get(f"phone-{i}-line_type", "unknown"),
             "remove": post.get(f"phone-{i}-remove") == "on"}
            for i in range(int(post.get("phone-count", 0) or 0))
        ]  # fmt: skip
        emails = [
            {"address": post.get(f"email-{i}-address", ""), "remove": post.get(f"email-{i}-remove") == "on"}
            for i in range(int(post.get("email-count", 0) or 0))
        ]
        return phones[:20], emails[:20]
    points = patient_points(patient)
    phones = [{"number": p.address, "line_type": p.line_type, "remove": False} for p in points if p.kind == "phone"]
    emails = [{"address": p.address, "remove": False} for p in points if p.kind == "email"]
    phones += [{"number": "", "line_type": "mobile", "remove": False} for _ in range(NEW_ROWS)]
    emails += [{"address": "", "remove": False} for _ in range(NEW_ROWS)]
    return phones, emails


def _grid(patient: Patient, categories: list, post=None) -> list[tuple]:
    """Per notification type: (category, [(channel, on for this patient, the practice's default)])."""
    rows = []
    for category in categories:
        defaults = set(category.notification_channels)
        cells = []
        for channel in NOTIFY_CHANNELS:
            default = channel in defaults
            if post is not None:
                on = post.get(f"notify:{category.key}:{channel}") == "on"
            else:
                on = patient.notification_overrides.get(category.key, {}).get(channel, default)
            cells.append((channel, on, default))
        rows.append((category, cells))
    return rows


def _preferences(post, ehr_owned: bool) -> dict:
    """The contact preferences the form may change: none when the practice's EHR owns them."""
    if ehr_owned:
        return {}
    return {
        "preferred_phone": post.get("preferred_phone") or None,
        "clear_preferred_phone": not post.get("preferred_phone"),
        "do_not_contact": post.get("do_not_contact") == "on",
        "marketing_consent": post.get("marketing_consent", ""),
    }


@staff_page
def patient_edit(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    """Edit a patient: addresses and line types, preferred phone, flags, notification choices."""
    staff = request.staff  # type: ignore[attr-defined]
    patient = _patient(request, patient_id)
    categories = list(Category.objects.filter(practice=staff.practice).order_by("marketing", "key"))
    phones, emails = _edit_rows(request, patient)
    post = request.POST if request.method == "POST" else None
    grid = _grid(patient, categories, post)
    error = None
    ehr_owned = staff.practice.contact_preferences_source == "ehr"
    # The practice's sites, if it has any: the patient's texts go from their location's number.
    locations = list(Location.objects.filter(practice=staff.practice).order_by("name"))
    location = (post.get("location", "") if post is not None else str(patient.location_id or "")) if locations else ""
    if post is not None:
        overrides: dict[str, dict[str, bool]] = {}
        for category, cells in grid:
            changed = {channel: on for channel, on, default in cells if on != default}
            if changed:
                overrides[category.key] = changed
        try:
            update_patient(
                patient=patient,
                first_name=post.get("first_name", ""),
                last_name=post.get("last_name", ""),
                phones=[
                    PhoneInput(r["number"], r["line_type"]) for r in phones if r["number"].strip() and not r["remove"]
                ],
                emails=[r["address"] for r in emails if r["address"].strip() and not r["remove"]],
                **_preferences(post, ehr_owned),
                tags=[t for t in post.get("tags", "").split(",")],
                notification_overrides=overrides,
                channel_opt_outs=[c for c in OPT_OUT_CHANNELS if post.get(f"optout:{c}") == "on"],
                location_id=location or None,
                clear_location=bool(locations) and not location,
                source=Source.STAFF,
                actor=staff.actor,
            )
        except InvalidInput as exc:
            error = exc
        else:
            messages.success(request, "Patient saved.")
            return redirect("staff-patient", patient_id=patient.pk)
    preferred = post.get("preferred_phone") if post is not None else (
        patient.preferred_phone.address if patient.preferred_phone else ""
    )  # fmt: skip
    return render(
        request,
        "staff/patient_edit.html",
        {
            "nav": "patients",
            "patient": patient,
            "values": post or {"first_name": patient.first_name, "last_name": patient.last_name},
            "phones": phones,
            "emails": emails,
            "line_types": ["mobile", "landline", "voip", "unknown"],
            "preferred": preferred,
            "do_not_contact": (post.get("do_not_contact") == "on") if post is not None else patient.do_not_contact,
            "marketing": post.get("marketing_consent") if post is not None else patient.marketing_consent,
            "grid": grid,
            "channels": NOTIFY_CHANNELS,
            "opt_outs": [
                (c, (post.get(f"optout:{c}") == "on") if post is not None else c in patient.channel_opt_outs)
                for c in OPT_OUT_CHANNELS
            ],
            "error": error,
            "ehr_owned": ehr_owned,
            "tags": post.get("tags", "") if post is not None else ", ".join(patient.tags),
            "locations": locations,
            "location": location,
        },
        status=400 if error else 200,
    )
