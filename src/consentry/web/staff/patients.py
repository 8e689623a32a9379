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
from consentry.consent.selectors import (
    MarkCode,
    address_cards,
    consent_timeline,
    next_opt_in_email_at,
)
from consentry.errors import InvalidInput
from consentry.messaging.selectors import patient_deliveries
from consentry.messaging.self_service import NotUnsubscribed, TooSoon, request_resubscribe
from consentry.patients.models import Patient, PatientContact
from consentry.records.selectors import patient_points, search_patients, sharing

from .access import staff_page


def _page_number(raw: str | None) -> int:
    try:
        return max(1, min(int(raw or 1), 10_000))
    except ValueError:
        return 1


@staff_page
def patient_list(request: HttpRequest) -> HttpResponse:
    practice = request.staff.practice  # type: ignore[attr-defined]
    q = request.GET.get("q", "")
    found = search_patients(practice, q, page=_page_number(request.GET.get("page")))
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
