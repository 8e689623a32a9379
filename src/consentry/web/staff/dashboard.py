"""The dashboard: today's deliveries, replies waiting for staff, opt-outs, failures to follow up."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from consentry.consent.selectors import opt_outs_since
from consentry.conversations.selectors import flagged_count
from consentry.messaging.selectors import needing_attention, status_counts

from .access import staff_page


@staff_page
def dashboard(request: HttpRequest) -> HttpResponse:
    practice = request.staff.practice  # type: ignore[attr-defined]
    now = datetime.now(ZoneInfo(practice.timezone))
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week_ago = now - timedelta(days=7)
    return render(
        request,
        "staff/dashboard.html",
        {
            "today": status_counts(practice, today),
            "flagged": flagged_count(practice),
            "opt_outs": opt_outs_since(practice.pk, week_ago),
            "attention": needing_attention(practice, week_ago),
        },
    )
