"""Pages a patient reaches from a link: one-click unsubscribe, resubscribe, and the portal's contact settings.

None of them uses a session or a cookie: the signed token in the URL is the
only credential, so the forms need no CSRF token (there is no ambient
authority for another site to borrow).

Unsubscribe follows RFC 8058: a POST with ``List-Unsubscribe=One-Click``
unsubscribes at once and answers 200 (no redirect); a GET only shows a page
with a button, because mail scanners follow every link in a message.
"""

from __future__ import annotations

from urllib.parse import quote

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from consentry.consent import selectors, tokens
from consentry.errors import InvalidInput
from consentry.messaging import self_service
from consentry.messaging.self_service import Click, NotUnsubscribed, TooSoon, UnknownPractice
from consentry.patients.models import Patient

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
    practice = patient.practice
    phones, emails = selectors.patient_addresses(patient)
    context: dict = {"practice": practice, "patient": patient}
    status = 200
    if request.method == "POST":
        wanted = request.POST.get("resubscribe", "")
        if wanted not in {e.address for e in emails}:
            context["error"], status = "That address is not one of yours.", 400
        else:
            try:
                self_service.request_resubscribe(practice=practice, email=wanted, actor=f"portal:{patient.pk}")
                context["notice"] = f"We sent an opt-in email to {wanted}. Open it and press Opt-In."
            except TooSoon:
                context["error"], status = (
                    (
                        f"We already sent an opt-in email to {wanted} today. "
                        "Please check your inbox, or try again tomorrow."
                    ),
                    429,
                )
            except (NotUnsubscribed, InvalidInput) as exc:
                context["notice"] = str(getattr(exc, "message", exc))
    context["phones"] = phones
    context["opt_in_link"] = opt_in_link(practice.texting_number)
    context["emails"] = emails
    return render(request, "patient/portal.html", context, status=status)
