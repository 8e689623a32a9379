"""Audit: the practice's consent ledger, filtered, with its chain verified on request and exported."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from consentry.accounts.selectors import actor_names
from consentry.consent.ledger import verify_chain
from consentry.consent.models import Source
from consentry.consent.selectors import EXPORT_FIELDS, export_rows, ledger_events
from consentry.csv_export import csv_download
from consentry.errors import InvalidInput
from consentry.patients.addresses import normalize_email, normalize_phone

from .access import staff_page

PER_PAGE = 100


class AuditFilter(forms.Form):
    address = forms.CharField(label="Address (phone or email)", max_length=320, required=False)
    source = forms.ChoiceField(label="Source", choices=[("", "any")] + list(Source.choices), required=False)
    actor = forms.CharField(label="Actor", max_length=200, required=False, help_text="e.g. staff:3, a phone, api:EHR")
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To (inclusive)", required=False, widget=forms.DateInput(attrs={"type": "date"}))


def _filtered(request: HttpRequest) -> tuple[AuditFilter, dict]:
    practice = request.staff.practice  # type: ignore[attr-defined]
    form = AuditFilter(request.GET or None)
    filters: dict = {}
    if form.is_valid():
        data = form.cleaned_data
        if address := data["address"].strip():
            try:
                if "@" in address:
                    filters["address"] = normalize_email(address, field="address")
                else:
                    filters["address"] = normalize_phone(address, region=practice.region, field="address").number
            except InvalidInput as exc:
                form.add_error("address", exc.message)
        zone = ZoneInfo(practice.timezone)
        if data["since"]:
            filters["since"] = datetime.combine(data["since"], time(0), zone)
        if data["until"]:
            filters["until"] = datetime.combine(data["until"] + timedelta(days=1), time(0), zone)
        filters.update(source=data["source"], actor=data["actor"].strip())
    return form, filters


@staff_page
def audit(request: HttpRequest) -> HttpResponse:
    practice = request.staff.practice  # type: ignore[attr-defined]
    form, filters = _filtered(request)
    events = ledger_events(practice.pk, **filters) if not form.errors else ledger_events(practice.pk).none()
    page = Paginator(events, PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "staff/audit.html",
        {
            "nav": "audit",
            "form": form,
            "page": page,
            "names": actor_names(e.actor for e in page),
            "query": query.urlencode(),
        },
    )


@staff_page
def verify(request: HttpRequest) -> HttpResponse:
    """Recompute every hash of the practice's ledger (a fragment for the audit page)."""
    report = verify_chain(request.staff.practice.pk)  # type: ignore[attr-defined]
    return render(request, "staff/_audit_verify.html", {"report": report, "at": datetime.now(UTC)})


@staff_page
def export(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The filtered ledger as CSV, oldest first, with notes: what an auditor is handed."""
    practice = request.staff.practice  # type: ignore[attr-defined]
    form, filters = _filtered(request)
    if form.errors:
        return HttpResponse("Fix the filters first: " + "; ".join(form.errors), status=400, content_type="text/plain")
    rows = (
        [json.dumps(row[f], sort_keys=True) if f == "evidence" else row[f] for f in EXPORT_FIELDS]
        for row in export_rows(ledger_events(practice.pk, **filters))
    )
    return csv_download(f"consent-ledger-{practice.pk}.csv", EXPORT_FIELDS, rows)
