"""Broadcasts: compose (category, audience, content with tokens and a sample), see who would get a
text, a call or an email and who would be skipped and why, send, then follow the delivery report.

Everything a broadcast decides is the engine's: the recipient preview is ``preview_message`` (the
same plan ``create_message`` stores), the report counts the deliveries it stored.
"""

from __future__ import annotations

import uuid

from django import forms
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from consentry import sms
from consentry.accounts.selectors import actor_names
from consentry.csv_export import csv_download
from consentry.errors import InvalidInput
from consentry.messaging import hints, templating
from consentry.messaging.models import Message
from consentry.messaging.planning import create_message, preview_message
from consentry.messaging.recipients import EVERY_PATIENT, EveryPatient
from consentry.messaging.selectors import (
    DELIVERY_EXPORT_FIELDS,
    broadcasts,
    delivery_export_rows,
    message_deliveries,
    message_report,
)
from consentry.patients.models import Category, OptOutHint, Patient
from consentry.records.selectors import Audience, audience_filtered, audience_from_list, practice_tags
from consentry.vocabulary import Kind, Status

from .access import page_number, staff_page

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
CHART_WIDTH = 320


class BroadcastForm(forms.Form):
    category = forms.ChoiceField(label="Category")
    audience = forms.ChoiceField(
        label="Audience",
        choices=[
            ("all", "All patients"),
            ("filter", "Patients with a label or a last visit in a range"),
            ("list", "A list: external ids, phones or emails"),
        ],
        widget=forms.RadioSelect,
        initial="all",
    )
    tag = forms.ChoiceField(label="With the label", required=False)
    visited_after = forms.DateField(
        label="Last visit on or after", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    visited_before = forms.DateField(
        label="Last visit before", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    patient_list = forms.CharField(
        label="The list, one per line", required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    list_file = forms.FileField(label="Or upload a CSV (first column)", required=False)
    sms = forms.CharField(label="Text message", required=False, widget=forms.Textarea(attrs={"rows": 3}))
    voice = forms.CharField(label="Call script", required=False, widget=forms.Textarea(attrs={"rows": 2}))
    email_subject = forms.CharField(label="Email subject", required=False, max_length=200)
    email_text = forms.CharField(label="Email", required=False, widget=forms.Textarea(attrs={"rows": 5}))
    send_key = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, categories: list[str], tags: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        field, tag = self.fields["category"], self.fields["tag"]
        assert isinstance(field, forms.ChoiceField) and isinstance(tag, forms.ChoiceField)
        field.choices = [(key, key.replace("_", " ")) for key in categories]
        tag.choices = [("", "any label")] + [(t, t) for t in tags]

    def content(self) -> dict:
        data = self.cleaned_data
        content: dict = {}
        for channel in ("sms", "voice"):
            if data[channel].strip():
                content[channel] = data[channel]
        if data["email_text"].strip() or data["email_subject"].strip():
            content["email"] = {"subject": data["email_subject"], "text": data["email_text"]}
        return content

    def audience_of(self, practice) -> Audience:
        data = self.cleaned_data
        if data["audience"] == "all":
            # Every patient, read a chunk at a time by the planner: no list of a whole practice in memory.
            if not Patient.objects.filter(practice=practice).exists():
                raise InvalidInput("audience", "the practice has no patients yet")
            return Audience(EVERY_PATIENT, [])
        if data["audience"] == "filter":
            audience = audience_filtered(
                practice,
                tag=data["tag"] or "",
                visited_after=data["visited_after"],
                visited_before=data["visited_before"],
            )
            if not audience.patient_ids:
                raise InvalidInput("audience", "no patient has that label and a last visit in that range")
            return audience
        lines = data["patient_list"].splitlines()
        upload = data.get("list_file")
        if upload is not None:
            if upload.size > MAX_UPLOAD_BYTES:
                raise InvalidInput("list_file", f"is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
            try:
                lines += upload.read().decode("utf-8-sig").splitlines()
            except UnicodeDecodeError as exc:
                raise InvalidInput("list_file", "is not a UTF-8 text or CSV file") from exc
        audience = audience_from_list(practice, lines)
        if not audience.patient_ids:
            raise InvalidInput("patient_list", "names no patient of this practice")
        return audience


def _categories(practice) -> list[str]:
    return list(Category.objects.filter(practice=practice).order_by("marketing", "key").values_list("key", flat=True))


def _sample(practice, content: dict, patient: Patient | None) -> dict:
    """The content as the first patient of the audience would get it (tokens filled in; a text as a
    number's first, with how to opt out at its end when the practice adds it)."""
    values = templating.values_for(practice, patient)
    sample: dict[str, str | int] = {}
    hint = hints.preview_hint(practice, Kind.BROADCAST)
    for channel in ("sms", "voice"):
        if channel in content:
            text = templating.personalize(content[channel], values)
            sample[channel] = templating.sms_text(practice, text, hint) if channel == "sms" else text
    if "sms" in sample:
        sample["sms_segments"] = sms.segments(str(sample["sms"]))  # what a carrier bills
    if "email" in content:
        sample["email_subject"] = templating.personalize(content["email"]["subject"], values)
        sample["email_text"] = templating.personalize(content["email"]["text"], values)
    return sample


def _hint_on(practice, category: str) -> str:
    """Which of the broadcast's texts end with how to opt out, in a few words ("" when none do)."""
    if not hints.may_add(practice, Kind.BROADCAST):
        return ""
    marketing = Category.objects.filter(practice=practice, key=category, marketing=True).exists()
    if practice.opt_out_hint == OptOutHint.ALWAYS or marketing:
        return "every text"
    return "a number's first automated or broadcast text in 30 days"


@staff_page
def broadcast_list(request: HttpRequest) -> HttpResponse:
    practice = request.staff.practice  # type: ignore[attr-defined]
    rows = [(message, message_report(message)) for message in broadcasts(practice)]
    return render(request, "staff/broadcasts.html", {"nav": "broadcasts", "rows": rows})


@staff_page
def broadcast_new(request: HttpRequest) -> HttpResponse:
    """Compose; "Preview" shows the sample and the recipient counts; "Send" sends what was previewed."""
    staff = request.staff  # type: ignore[attr-defined]
    practice = staff.practice
    post = request.POST if request.method == "POST" else None
    form = BroadcastForm(
        post,
        request.FILES or None,
        categories=_categories(practice),
        tags=practice_tags(practice),
        initial={"category": "announcement"},
    )
    context: dict = {"nav": "broadcasts", "form": form, "tokens": templating.TOKENS}
    status = 200
    if post is not None and form.is_valid():
        try:
            audience = form.audience_of(practice)
            content = form.content()
            if post.get("action") == "send":
                planned = create_message(
                    practice=practice,
                    kind=Kind.BROADCAST,
                    category=form.cleaned_data["category"],
                    patient_ids=audience.patient_ids,
                    content=content,
                    actor=staff.actor,
                    idempotency_key=form.cleaned_data["send_key"][:64],  # a second click answers the first send
                )
                return redirect("staff-broadcast", message_id=planned.message.pk)
            preview = preview_message(
                practice=practice,
                kind=Kind.BROADCAST,
                category=form.cleaned_data["category"],
                patient_ids=audience.patient_ids,
                content=content,
            )
            if isinstance(audience.patient_ids, EveryPatient):
                first = Patient.objects.filter(practice=practice).order_by("pk").first()
            else:
                first = Patient.objects.filter(pk=audience.patient_ids[0]).first()
            context.update(
                preview=preview,
                unmatched=audience.unmatched[:20],
                unmatched_count=len(audience.unmatched),
                sample=_sample(practice, content, first),
                hint_on=_hint_on(practice, form.cleaned_data["category"]),
                hint_text=practice.opt_out_hint_text,
                sample_patient=first,
                send_key=uuid.uuid4().hex,
            )
        except InvalidInput as exc:
            context["error"], status = exc, 400
    elif post is not None:
        status = 400
    return render(request, "staff/broadcast_new.html", context, status=status)


def _message(request: HttpRequest, message_id: uuid.UUID) -> Message:
    practice = request.staff.practice  # type: ignore[attr-defined]
    return get_object_or_404(Message, pk=message_id, practice=practice, kind=Kind.BROADCAST)


def _bars(counts: dict[str, int]) -> list[tuple[str, int, int]]:
    """(label, count, bar width in the chart) for each non-zero count."""
    top = max(counts.values(), default=0) or 1
    return [(label, n, max(2, round(CHART_WIDTH * n / top))) for label, n in counts.items() if n]


@staff_page
def broadcast_report(request: HttpRequest, message_id: uuid.UUID) -> HttpResponse:
    message = _message(request, message_id)
    report = message_report(message)
    status, reason = request.GET.get("status", ""), request.GET.get("reason", "")
    if status not in {s.value for s in Status}:
        status = ""
    page = Paginator(message_deliveries(message, status=status, reason=reason[:64]), 100).get_page(
        page_number(request.GET.get("page"))
    )
    context = {
        "nav": "broadcasts",
        "message": message,
        "sender": actor_names([message.actor])[message.actor],
        "report": report,
        "status_bars": _bars(report.by_status),
        "reason_bars": _bars(report.by_reason),
        "chart_width": CHART_WIDTH,
        "page": page,
        "status": status,
        "reason": reason,
        "statuses": [s.value for s in Status],
    }
    template = "staff/_broadcast_counts.html" if request.htmx else "staff/broadcast_report.html"  # type: ignore[attr-defined]
    return render(request, template, context)


@staff_page
def broadcast_export(request: HttpRequest, message_id: uuid.UUID) -> StreamingHttpResponse:
    """Every delivery of the broadcast as CSV: who, on which channel and address, what became of it."""
    message = _message(request, message_id)
    return csv_download(f"broadcast-{message.pk}.csv", DELIVERY_EXPORT_FIELDS, delivery_export_rows(message))
