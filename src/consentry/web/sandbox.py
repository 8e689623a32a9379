"""The sandbox simulator: the patients' side of everything the sandbox provider "sent".

One thread per phone (the texts and calls sent to it, the texts it sent in) and
one inbox per email address. A reply typed on a phone is handed, as the
product's own ``InboundText``, to the same service a provider's verified
webhook hands it to: it acts exactly as a text that came through Twilio.

Both pages exist only in a demo or development deployment (``CONSENTRY_DEMO=1``
or ``DEBUG=1``) whose default provider is the sandbox: they show every
practice's messages and let anyone text in as any phone, so a production
deployment answers 404 (and refuses to start while a practice would deliver
to the sandbox, see ``consentry/checks.py``).
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from csp.decorators import csp_update
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from consentry.consent.ledger import consent_state
from consentry.conversations.inbound import handle_inbound_text
from consentry.conversations.models import Conversation, Flag
from consentry.errors import InvalidInput
from consentry.keywords.models import InboundMessage
from consentry.patients.addresses import normalize_phone
from consentry.patients.models import Location, Practice
from consentry.providers.base import InboundText, provider_name
from consentry.providers.models import SandboxMessage
from consentry.web.demo import sandbox_pages_on

SHOWN = 500  # the newest messages of each direction on the page
MAX_BODY_CHARS = 1600  # the longest text Twilio delivers
NEW_FORM = "new"
_FORM_NAME = re.compile(r"^(new|phone-\d{1,20})$")


def sandbox_only(view):
    """404 unless this is a demo deployment on the sandbox (checked before anything else, CSRF included)."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not sandbox_pages_on():
            raise Http404("the sandbox exists only in a demo deployment")
        return view(request, *args, **kwargs)

    # The middleware's CSRF check would answer 403 first and so tell that the page exists:
    # the views below check the token themselves (csrf_protect), after this 404.
    wrapped.csrf_exempt = True
    return wrapped


# --- what the page shows ------------------------------------------------------


@dataclass
class Entry:
    key: str  # unique on the page, for element ids
    at: datetime
    direction: str  # "out": the practice to the person; "in": the phone to the practice
    channel: str  # sms, voice, email
    practice_id: uuid.UUID
    practice_name: str
    body: str
    sender: str = ""
    subject: str = ""
    html: str = ""
    headers: dict = field(default_factory=dict)
    keyword: str = ""
    flag: str = ""  # a reply the practice flagged as a possible opt-out, for staff to confirm
    number: str = ""  # the practice's number the text came from (out) or went to (in)

    @property
    def when(self) -> str:
        """The time in the practice's zone, e.g. "Nov 22, 09:41:07 EST"."""
        return f"{self.at:%b} {self.at.day}, {self.at:%H:%M:%S %Z}"


@dataclass
class Thread:
    address: str
    anchor: str
    entries: list[Entry] = field(default_factory=list)  # oldest first
    states: list[str] = field(default_factory=list)  # e.g. "Oak Clinic: opted out of texts"
    selected: str = ""  # the practice its reply form is addressed to

    @property
    def latest(self) -> Entry:
        return self.entries[-1]

    @property
    def practice_ids(self) -> list:
        return list(dict.fromkeys(e.practice_id for e in self.entries))


def phone_anchor(number: str) -> str:
    return "phone-" + re.sub(r"\D", "", number)


def inbox_anchor(address: str) -> str:
    return "inbox-" + hashlib.sha256(address.encode()).hexdigest()[:16]


def _local(at: datetime, practice: Practice | None) -> datetime:
    try:
        zone = ZoneInfo(practice.timezone) if practice else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return at.astimezone(zone)


def build_board() -> tuple[list[Thread], list[Thread]]:
    """Phone threads and email inboxes, the most recently active first; oldest entry first in each."""
    outbound = list(SandboxMessage.objects.filter(channel__in=["sms", "voice", "email"]).order_by("-pk")[:SHOWN])
    inbound = list(InboundMessage.objects.order_by("-pk")[:SHOWN])
    practices = Practice.objects.in_bulk({m.practice_id for m in outbound} | {m.practice_id for m in inbound})
    phones: dict[str, Thread] = {}
    inboxes: dict[str, Thread] = {}

    def add(threads, anchor, address, entry):
        threads.setdefault(address, Thread(address, anchor(address))).entries.append(entry)

    for m in outbound:
        practice = practices.get(m.practice_id)
        entry = Entry(
            key=f"out-{m.pk}",
            at=_local(m.created_at, practice),
            direction="out",
            channel=m.channel,
            practice_id=m.practice_id,
            practice_name=practice.name if practice else "unknown practice",
            body=m.body,
            sender=m.sender,
            number=m.sender,
            subject=m.subject,
            html=m.html,
            headers=m.headers,
        )
        if m.channel == "email":
            add(inboxes, inbox_anchor, m.to, entry)
        else:
            add(phones, phone_anchor, m.to, entry)
    for text in inbound:
        practice = practices.get(text.practice_id)
        entry = Entry(
            key=f"in-{text.pk}",
            at=_local(text.received_at, practice),
            direction="in",
            channel="sms",
            practice_id=text.practice_id,
            practice_name=practice.name if practice else "unknown practice",
            body=text.body,
            sender=text.from_number,
            number=text.to_number,
            keyword="" if text.keyword == "none" else text.keyword.replace("_", "-") + " keyword",
        )
        add(phones, phone_anchor, text.from_number, entry)

    for thread in [*phones.values(), *inboxes.values()]:
        thread.entries.sort(key=lambda e: e.at)
    _flagged_replies(phones, practices)
    _consent_lines(phones, inboxes, practices)
    order = functools.partial(sorted, key=lambda t: t.latest.at, reverse=True)
    return order(phones.values()), order(inboxes.values())


FLAGGED = "possible opt-out: staff to confirm"


def _flagged_replies(phones: dict[str, Thread], practices: dict) -> None:
    """Mark the reply each flagged conversation was flagged for: the phone's last text to that practice
    received by the time of the flag."""
    flagged = Conversation.objects.filter(
        practice_id__in=list(practices), phone__in=list(phones), flag=Flag.POSSIBLE_OPT_OUT
    ).values_list("practice_id", "phone", "flagged_at", "flag_rule")
    for practice_id, phone, flagged_at, rule in flagged:
        replies = [
            e
            for e in phones[phone].entries
            if e.direction == "in" and e.practice_id == practice_id and (flagged_at is None or e.at <= flagged_at)
        ]
        if replies:
            replies[-1].flag = f"{FLAGGED} ({rule})" if rule else FLAGGED


def _consent_lines(phones: dict[str, Thread], inboxes: dict[str, Thread], practices: dict) -> None:
    """Each thread's standing at each practice in it: opted out, unsubscribed, bounced, blocked."""
    by_practice: dict = {}
    for thread in [*phones.values(), *inboxes.values()]:
        for practice_id in thread.practice_ids:
            by_practice.setdefault(practice_id, []).append(thread.address)
    for practice_id, addresses in by_practice.items():
        practice = practices.get(practice_id)
        if practice is None:
            continue
        state = consent_state(practice_id, addresses)
        for address in addresses:
            if address in phones:
                line = "opted out of texts" if address in state.sms_opted_out else "opted in to texts"
                if blocked := state.blocks.get(address):
                    line += f"; blocked for {', '.join(sorted(blocked))}"
                phones[address].states.append(f"{practice.name}: {line}")
            else:
                if address in state.email_bounced:
                    inboxes[address].states.append(f"{practice.name}: bounced")
                elif address in state.email_unsubscribed:
                    inboxes[address].states.append(f"{practice.name}: unsubscribed")


def reply_practices() -> list[Practice]:
    """The practices a sandbox phone can text: those whose texts the sandbox carries."""
    practices = Practice.objects.order_by("name").prefetch_related(
        Prefetch("locations", queryset=Location.objects.order_by("name"))
    )
    return [p for p in practices if provider_name(p, "sms") == "sandbox"]


def _page(request: HttpRequest, *, form: str = "", error: str = "", values: dict | None = None, status: int = 200):
    phones, inboxes = build_board()
    practices = reply_practices()
    values = values or {}
    if form and not any(t.anchor == form for t in phones):
        form = NEW_FORM  # a phone with no thread yet: its error shows on the new-number form
    location_numbers = {location.texting_number for p in practices for location in p.locations.all()}
    for thread in phones:
        # A phone answers, by default, the practice (and the number of it) it last wrote to or heard from.
        latest = thread.latest
        last = str(latest.practice_id) + (f"/{latest.number}" if latest.number in location_numbers else "")
        thread.selected = values.get("practice", "") if form == thread.anchor else last
    context = {
        "phones": phones,
        "inboxes": inboxes,
        "practices": practices,
        "form": form,
        "error": error,
        "values": values,
        "new_form": NEW_FORM,
    }
    return render(request, "sandbox/page.html", context, status=status)


# The emails shown carry the practice's layout, whose styles are inline (as email's must be):
# the page lets styles, and nothing else, be inline. Its frames run no script.
EMAIL_STYLES = {"style-src": ["'unsafe-inline'"]}


@sandbox_only
@require_GET
@never_cache
@ensure_csrf_cookie
@csp_update(EMAIL_STYLES)
def page(request: HttpRequest) -> HttpResponse:
    return _page(request)


# --- a reply from a phone -------------------------------------------------------


class ReplyRefused(Exception):
    pass


def _clean_reply(post) -> tuple[Practice, str, str, str]:
    """The practice texted, the phone, the text, and the practice's number it goes to (``practice`` is the
    practice's id, or its id and one of its locations' numbers: ``<id>/<number>``)."""
    raw_practice, _, to_number = post.get("practice", "").partition("/")
    try:
        practice_id = uuid.UUID(raw_practice)
    except ValueError:
        raise ReplyRefused("Choose the practice to text.") from None
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        raise ReplyRefused("That practice does not exist (any more): reload the page and choose another.")
    if provider_name(practice, "sms") != "sandbox":
        raise ReplyRefused(
            f"{practice.name} sends its texts through {provider_name(practice, 'sms')}, "
            "not the sandbox: its patients' phones are real."
        )
    if to_number and not practice.locations.filter(texting_number=to_number).exists():
        raise ReplyRefused(f"{to_number} is not a number of {practice.name} (any more): reload the page.")
    try:
        number = normalize_phone(post.get("from", ""), region=practice.region, field="from").number
    except InvalidInput as exc:
        raise ReplyRefused(f"From: {exc.message}.") from None
    body = post.get("body", "")
    if not body.strip():
        raise ReplyRefused("Write the text to send.")
    if "\x00" in body:
        raise ReplyRefused("A text cannot contain NUL characters.")
    if len(body) > MAX_BODY_CHARS:
        raise ReplyRefused(f"A text has at most {MAX_BODY_CHARS} characters; this one has {len(body)}.")
    return practice, number, body, to_number or practice.texting_number


@sandbox_only
@require_POST
@csrf_protect
@csp_update(EMAIL_STYLES)
def reply(request: HttpRequest) -> HttpResponse:
    form = request.POST.get("form", "")
    form = form if _FORM_NAME.match(form) else NEW_FORM
    values = {k: request.POST.get(k, "") for k in ("from", "practice", "body")}
    try:
        practice, number, body, to_number = _clean_reply(request.POST)
        text = InboundText(
            practice=practice,
            from_number=number,
            to_number=to_number,
            body=body,
            provider="sandbox",
            provider_ref="SB" + secrets.token_hex(16),
        )
        try:
            handle_inbound_text(text)
        except InvalidInput as exc:
            raise ReplyRefused(f"{exc.field}: {exc.message}.") from None
    except ReplyRefused as exc:
        return _page(request, form=form, error=str(exc), values=values, status=400)
    return HttpResponseRedirect(f"{reverse('sandbox')}#{phone_anchor(number)}", status=303)
