"""Pages a patient reaches from a link: one-click unsubscribe, resubscribe, and the portal.

None of them uses a session or a cookie: the signed token in the URL is the
only credential, so the forms need no CSRF token (there is no ambient
authority for another site to borrow).

Unsubscribe follows RFC 8058: a POST with ``List-Unsubscribe=One-Click``
unsubscribes at once and answers 200 (no redirect); a GET only shows a page
with a button, because mail scanners follow every link in a message.

The portal is the patient's notification settings, reached from a portal
link staff hand out and from the footer of every email to the patient:

- A notice on top when a phone of theirs that notifications could go to has
  opted out of texts, with a button down to the settings.
- A switch per type and channel. A type offers the channels the practice's
  grid has for it, in-app (always allowed), and any channel the patient's
  settings already turn on (so it can be turned off); nothing else, so a
  patient cannot add texts or calls the practice does not send for that type.
  A channel of the grid of a type the patient cannot turn off (account and
  security notices) shows as always on. ``selectors.notification_settings``
  asks ``decide()`` itself what each switch does, so the page and the
  planning agree.
- Channels off for every type (``channel_opt_outs``); stopping texts to a
  phone (an SMS opt-out of that number, as a STOP is); stopping all email
  (each address unsubscribed, and email off for every type).
- Taking an opted-out phone off the settings (``notification_phones_removed``
  on the patient): no notification goes to it, on any channel, even once it
  is opted back in, until the patient puts it back. Its opt-out and its
  ledger history stay; other kinds of message are not concerned.
- The opt-in email for an unsubscribed address, and the patient's in-app
  notices, newest first.

Every change is a ledger event (source ``portal``, the click's IP address and
user agent as evidence), notification settings included: turning a channel
off says no as surely as an unsubscribe does, and the ledger proves every no
(the ``notifications`` subject, replayed like the others). The rules are the
services' (``consent.services``); this view parses the form and shows the
outcome. A bad form changes nothing, and says why.
"""

from __future__ import annotations

from urllib.parse import quote

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from consentry.consent import selectors, tokens
from consentry.consent import services as consent
from consentry.consent.models import Source
from consentry.errors import InvalidInput
from consentry.messaging import self_service
from consentry.messaging.self_service import Click, NotUnsubscribed, TooSoon, UnknownPractice
from consentry.patients.models import Patient
from consentry.providers.models import InAppNotice

GONE = "This link belongs to a practice that no longer uses this service."


def click(request: HttpRequest) -> Click:
    return Click(ip=request.META.get("REMOTE_ADDR", ""), user_agent=request.headers.get("User-Agent", ""))


def invalid(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "patient/invalid.html", {"message": message}, status=status)


def _read(request: HttpRequest, load, token: str, hint: str = ""):
    """(what the token names, None), or (None, the error page): 400 for a bad or expired token, 404 when gone."""
    try:
        return load(token), None
    except tokens.BadToken as exc:
        return None, invalid(request, f"{str(exc).capitalize()}.{hint}", 400)
    except UnknownPractice:
        return None, invalid(request, GONE, 404)


@never_cache  # a patient's own page: never kept by a browser or a proxy
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    target, error = _read(request, self_service.unsubscribe_target, token)
    if error:
        return error
    practice, email = target
    done = False
    if request.method == "POST":
        if request.POST.get("List-Unsubscribe") != "One-Click":
            return invalid(request, "An unsubscribe request must say List-Unsubscribe=One-Click.", 400)
        self_service.unsubscribe(token, click(request), via="one_click")
        done = True
    return render(request, "patient/unsubscribe.html", {"practice": practice, "email": email, "done": done})


@never_cache  # a patient's own page: never kept by a browser or a proxy
@csrf_exempt
@require_http_methods(["GET", "POST"])
def resubscribe(request: HttpRequest, token: str) -> HttpResponse:
    resubscribe_request, error = _read(
        request, self_service.resubscribe_target, token, " Ask the practice for a new opt-in email."
    )
    if error:
        return error
    done = False
    if request.method == "POST":
        self_service.confirm_resubscribe(token, click(request))
        done = True
    context = {"practice": resubscribe_request.practice, "email": resubscribe_request.email, "done": done}
    return render(request, "patient/resubscribe.html", context)


def opt_in_link(practice_number: str) -> str:
    """Opens the phone's messaging app with UNSTOP to the practice (the ``?&`` form works on iOS and Android)."""
    return f"sms:{practice_number}?&body={quote('UNSTOP')}"


# What the portal calls the practice's types and the channels (a practice's own types: their key, in words).
TYPE_LABELS = {
    "appointment_reminder": "Appointment reminders",
    "appointment_confirmed": "Appointment confirmations",
    "appointment_cancelled": "Appointment cancellations",
    "recall": "Reminders that a visit is due",
    "payment_due": "Bills due",
    "payment_received": "Payment receipts",
    "payment_failed": "Failed payments",
    "message_received": "New messages from the practice",
    "document_shared": "Documents to read or sign",
    "survey": "Surveys",
    "announcement": "Practice news (closures, hours)",
    "system": "Account and security notices",
    "marketing": "Offers and promotions",
}
CHANNEL_LABELS = {"in_app": "In this portal", "sms": "Text", "voice": "Call", "email": "Email"}
CHANNEL_NAMES = {"sms": "Text messages", "voice": "Phone calls", "email": "Email"}
NOTICES_SHOWN = 20


def type_label(key: str) -> str:
    return TYPE_LABELS.get(key) or key.replace("_", " ").capitalize()


def _pairs(values: list[str], field: str) -> list[tuple[str, str]]:
    """``type:channel`` form values as pairs; anything else is bad input."""
    pairs = []
    for value in values:
        key, sep, channel = value.partition(":")
        if not sep or not key or not channel:
            raise InvalidInput(field, "this form was not sent by this page; please reload it")
        pairs.append((key, channel))
    return pairs


def _settings_change(post, patient: Patient, actor: str, evidence: dict) -> str:
    """The settings form: a hidden ``cell`` per switch shown, a checked ``on`` per switch on (likewise
    ``channel``/``channel_on``), so that a switch turned off is told from one the form never had."""
    shown, on = _pairs(post.getlist("cell"), "cell"), set(_pairs(post.getlist("on"), "on"))
    if on - set(shown):
        raise InvalidInput("on", "this form was not sent by this page; please reload it")
    channels_on = set(post.getlist("channel_on"))
    if channels_on - set(post.getlist("channel")):
        raise InvalidInput("channel_on", "this form was not sent by this page; please reload it")
    event = consent.set_notification_choices(
        patient=patient,
        switches={pair: pair in on for pair in shown},
        channels={channel: channel in channels_on for channel in post.getlist("channel")},
        source=Source.PORTAL,
        actor=actor,
        evidence=evidence,
    )
    return "Your notification settings are saved." if event else "Nothing changed: your settings were already so."


def _change(request: HttpRequest, patient: Patient) -> str:
    """Carry out the form that was sent; what to tell the patient. ``InvalidInput`` changes nothing."""
    post, practice = request.POST, patient.practice
    action = post.get("action", "")
    actor, evidence = f"portal:{patient.pk}", click(request).evidence()
    number, source = post.get("number", ""), Source.PORTAL
    if action == "settings":
        return _settings_change(post, patient, actor, evidence)
    if action == "stop_texts":
        consent.stop_texts(patient=patient, number=number, source=source, actor=actor, evidence=evidence)
        return (
            f"{number} will get no more texts from {practice.name}. To turn them back on, "
            f"text UNSTOP to {practice.texting_number} from that phone."
        )
    if action == "stop_email":
        consent.stop_email(patient=patient, source=source, actor=actor, evidence=evidence)
        return f"{practice.name} will send you no more email. Ask for an opt-in email below to get it again."
    if action == "remove_phone":
        consent.remove_notification_phone(patient=patient, number=number, source=source, actor=actor, evidence=evidence)
        return f"{number} is off your notification settings. It stays opted out of texts."
    if action == "restore_phone":
        consent.restore_notification_phone(
            patient=patient, number=number, source=source, actor=actor, evidence=evidence
        )
        return f"{number} is back in your notification settings."
    raise InvalidInput("action", "this page cannot do that; please reload it")


def _resubscribe(patient: Patient, wanted: str, emails) -> tuple[str, str, int]:
    """The opt-in email button: (notice, error, status)."""
    if wanted not in {e.address for e in emails}:
        return "", "That address is not one of yours.", 400
    try:
        self_service.request_resubscribe(practice=patient.practice, email=wanted, actor=f"portal:{patient.pk}")
    except TooSoon:
        return (
            "",
            f"We already sent an opt-in email to {wanted} today. Please check your inbox, or try again tomorrow.",
            429,
        )
    except (NotUnsubscribed, InvalidInput) as exc:
        return str(getattr(exc, "message", exc)), "", 200
    return f"We sent an opt-in email to {wanted}. Open it and press Opt-In.", "", 200


@never_cache  # a patient's own page: never kept by a browser or a proxy
@csrf_exempt
@require_http_methods(["GET", "POST"])
def portal(request: HttpRequest, token: str) -> HttpResponse:
    try:
        patient_id = tokens.read_portal_token(token)
        patient = Patient.objects.select_related("practice").filter(pk=patient_id).first()
    except tokens.BadToken as exc:
        return invalid(request, f"{str(exc).capitalize()}. Ask the practice for a new link.", 400)
    if patient is None:
        return invalid(request, GONE, 404)
    notice, error, status = "", "", 200
    if request.method == "POST":
        if "resubscribe" in request.POST:
            _, emails = selectors.patient_addresses(patient)
            notice, error, status = _resubscribe(patient, request.POST["resubscribe"], emails)
        else:
            try:
                notice = _change(request, patient)
            except InvalidInput as exc:
                error, status = f"{exc.message[:1].upper()}{exc.message[1:]}. Nothing was changed.", 400
    return render(request, "patient/portal.html", {**_page(patient), "notice": notice, "error": error}, status=status)


def _page(patient: Patient) -> dict:
    """What the portal shows, read after any change."""
    practice = patient.practice
    patient.refresh_from_db(fields=["notification_overrides", "channel_opt_outs", "notification_phones_removed"])
    phones, emails = selectors.patient_addresses(patient)
    settings = selectors.notification_settings(patient)
    listed = [p for p in phones if p.number not in settings.phones_removed]
    rows = [
        {
            "key": row.key,
            "label": type_label(row.key),
            "cells": [{**vars(cell), "label": CHANNEL_LABELS[cell.channel]} for cell in row.offered],
            "needs_marketing_consent": row.needs_marketing_consent,
        }
        for row in settings.rows
    ]
    return {
        "practice": practice,
        "patient": patient,
        "phones": listed,
        "removed_phones": [p for p in phones if p.number in settings.phones_removed],
        "blocked_phones": [p for p in listed if p.opted_out],
        "opt_in_link": opt_in_link(practice.texting_number),
        "emails": emails,
        "rows": rows,
        "channels": [
            {"channel": c, "label": CHANNEL_NAMES[c], "on": c not in settings.channel_opt_outs}
            for c in settings.opt_out_channels
        ],
        "channels_off": [CHANNEL_NAMES[c] for c in settings.opt_out_channels if c in settings.channel_opt_outs],
        "email_can_stop": bool(emails)
        and ("email" not in settings.channel_opt_outs or any(e.state == "subscribed" for e in emails)),
        "notices": InAppNotice.objects.filter(patient=patient).order_by("-created_at", "-pk")[:NOTICES_SHOWN],
    }
