"""Send a message to one patient: channels the engine says can reach them, the marketing warning
before anything is queued, and Proceed.

The engine decides everything here: which channels can reach the patient for the chosen category
(``preview_message``), whether the plan carries a warning (``create_message`` refuses to store it
until staff acknowledge it), and what became of each delivery.
"""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from consentry.errors import InvalidInput
from consentry.messaging.planning import Unacknowledged, create_message, preview_message
from consentry.patients.models import Category, Patient
from consentry.vocabulary import Kind

from .access import staff_page
from .patients import _patient

CHANNELS = (("sms", "Text"), ("voice", "Call"), ("email", "Email"))
# What the engine is asked about to find which channels reach the patient: a little of everything.
PROBE = {"sms": ".", "voice": ".", "email": {"subject": ".", "text": "."}}


class SendForm(forms.Form):
    category = forms.ChoiceField(label="Category")
    channels = forms.MultipleChoiceField(
        label="Send by", choices=CHANNELS, widget=forms.CheckboxSelectMultiple, required=True
    )
    subject = forms.CharField(label="Email subject", max_length=200, required=False)
    body = forms.CharField(label="Message", max_length=1600, widget=forms.Textarea(attrs={"rows": 5}))
    acknowledge = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, categories: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["category"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(key, key.replace("_", " ")) for key in categories]

    def content(self) -> dict:
        data = self.cleaned_data
        content: dict = {}
        for channel in data["channels"]:
            if channel == "email":
                content["email"] = {"subject": data["subject"], "text": data["body"]}
            else:
                content[channel] = data["body"]
        return content


def reachability(patient: Patient, category: str) -> dict[str, tuple[bool, str, str]]:
    """Per channel: (can it reach the patient for this category, the address, the reason it cannot)."""
    preview = preview_message(
        practice=patient.practice,
        kind=Kind.MANUAL,
        category=category,
        patient_ids=[patient.pk],
        content=PROBE,
        keep_deliveries=True,
    )
    found: dict[str, tuple[bool, str, str]] = {}
    for row in preview.deliveries:
        sending = row.status in ("pending", "deferred")
        if row.channel not in found or (sending and not found[row.channel][0]):
            found[row.channel] = (sending, row.address, "" if sending else row.reason or row.status)
    return found


@staff_page
def send_to_patient(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    staff = request.staff  # type: ignore[attr-defined]
    patient = _patient(request, patient_id)
    categories = list(
        Category.objects.filter(practice=staff.practice).order_by("marketing", "key").values_list("key", flat=True)
    )
    data = request.POST if request.method == "POST" else None
    initial = {"category": request.GET.get("category") or "document_shared"}
    form = SendForm(data, categories=categories, initial=initial)
    category = (request.POST or request.GET).get("category") or initial["category"]
    if category not in categories:
        category = categories[0]
    reach = reachability(patient, category)
    warnings: list[str] = []
    if request.method == "POST" and form.is_valid():
        chosen = form.cleaned_data["channels"]
        refused = [(ch, reach[ch][2]) for ch in chosen if ch in reach and not reach[ch][0]]
        if refused:
            for channel, why in refused:
                form.add_error("channels", f"{dict(CHANNELS)[channel]}: cannot reach this patient ({why}).")
        else:
            try:
                planned = create_message(
                    practice=staff.practice,
                    kind=Kind.MANUAL,
                    category=form.cleaned_data["category"],
                    patient_ids=[patient.pk],
                    content=form.content(),
                    actor=staff.actor,
                    acknowledge_warnings=form.cleaned_data["acknowledge"],
                )
            except Unacknowledged as exc:
                warnings = exc.warnings.get(str(patient.pk), [])
            except InvalidInput as exc:
                form.add_error(None, str(exc))
            else:
                sent = ", ".join(f"{d.channel} {d.status}" for d in planned.deliveries)
                messages.success(request, f"Message queued: {sent}.")
                return redirect("staff-patient", patient_id=patient.pk)
    return render(
        request,
        "staff/send.html",
        {
            "nav": "patients",
            "patient": patient,
            "form": form,
            "channels": [(key, label, reach.get(key, (False, "", "no_reachable_channel"))) for key, label in CHANNELS],
            "category": category,
            "warnings": warnings,
        },
    )
