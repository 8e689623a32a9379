"""Blocked Communications: the practice's list of phone numbers blocked per category.

A number blocked for a category gets no message of that category, neither text nor call, whatever
the kind of message (staff texts included). Every change is ``consent.services.set_block()``: a
ledger event with the staff user as its actor. Front desk and admins keep the list alike.
"""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from consentry.consent import ledger
from consentry.consent.models import Block, Source
from consentry.consent.selectors import blocked_numbers
from consentry.consent.services import set_block
from consentry.errors import InvalidInput
from consentry.patients.addresses import normalize_phone
from consentry.records.dues import RECALL, practice_categories

from .access import staff_page


def category_label(key: str) -> str:
    """ "Blocked Recalls" for recalls, as the seeds' practices know it; "Blocked payment due" and so on."""
    return "Blocked Recalls" if key == RECALL else f"Blocked {key.replace('_', ' ')}"


def _words(keys) -> str:
    return ", ".join(key.replace("_", " ") for key in sorted(set(keys)))


def _page(request: HttpRequest, *, errors: dict[str, str] | None = None, entered: dict | None = None, status=200):
    practice = request.staff.practice  # type: ignore[attr-defined]
    keys = practice_categories(practice)
    context = {
        "nav": "blocked",
        "categories": [(key, category_label(key)) for key in keys],
        "blocked": blocked_numbers(practice),
        "errors": errors or {},
        "entered": entered or {"number": "", "categories": []},
    }
    return render(request, "staff/blocks.html", context, status=status)


@staff_page
def block_list(request: HttpRequest) -> HttpResponse:
    return _page(request)


def _chosen(request: HttpRequest) -> list[str]:
    return [c for c in request.POST.getlist("categories") if c]


@require_POST
@staff_page
def block_add(request: HttpRequest) -> HttpResponse:
    """Block a number, typed in any format, for the categories ticked (added to any it was blocked for)."""
    staff = request.staff  # type: ignore[attr-defined]
    raw, chosen = request.POST.get("number", ""), _chosen(request)
    entered = {"number": raw, "categories": chosen}
    try:
        number = normalize_phone(raw, region=staff.practice.region, field="number").number
        if not chosen:
            raise InvalidInput("categories", "tick at least one category to block the number for")
        with transaction.atomic():
            blocked = set(ledger.address_status(staff.practice.pk, number).blocked_categories) | set(chosen)
            set_block(
                practice=staff.practice,
                number=number,
                categories=sorted(blocked),
                source=Source.STAFF,
                actor=staff.actor,
            )
    except InvalidInput as exc:
        return _page(request, errors={exc.field: exc.message}, entered=entered, status=422)
    messages.success(request, f"{number} is blocked for {_words(blocked)}.")
    return redirect("staff-blocks")


@require_POST
@staff_page
def block_update(request: HttpRequest, number: str) -> HttpResponse:
    """Set the categories a listed number is blocked for; none left takes it off the list."""
    staff = request.staff  # type: ignore[attr-defined]
    practice = staff.practice
    try:
        number = normalize_phone(number, region=practice.region).number
    except InvalidInput:
        raise Http404("not a blocked number") from None
    if not Block.objects.filter(practice=practice, number=number).exists():
        raise Http404("not a blocked number")  # another practice's number, or one unblocked since
    chosen = _chosen(request)
    try:
        set_block(practice=practice, number=number, categories=chosen, source=Source.STAFF, actor=staff.actor)
    except InvalidInput as exc:
        outcome, ok = f"Nothing changed for {number}: {exc.message}.", False
    else:
        if chosen:
            outcome = f"{number} is blocked for {_words(chosen)}."
        else:
            outcome = f"{number} is no longer blocked: it left the list."
        ok = True
    if not request.htmx:  # type: ignore[attr-defined]
        (messages.success if ok else messages.error)(request, outcome)
        return redirect("staff-blocks")
    # htmx: the number's row again (none once it left the list), and the outcome in the status line.
    keys = practice_categories(practice)
    return render(
        request,
        "staff/_blocks_row.html",
        {
            "row": next(iter(blocked_numbers(practice, only=number)), None),
            "categories": [(key, category_label(key)) for key in keys],
            "outcome": outcome,
            "ok": ok,
        },
    )


urlpatterns = [
    path("blocked/", block_list, name="staff-blocks"),
    path("blocked/add", block_add, name="staff-block-add"),
    path("blocked/<str:number>/", block_update, name="staff-block"),
]
