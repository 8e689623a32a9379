"""Provider webhooks: check the signature first, then parse, then one service acts."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from consentry.conversations.inbound import handle_inbound_sms
from consentry.errors import InvalidInput
from consentry.messaging.models import Delivery
from consentry.messaging.status import apply_twilio_status
from consentry.patients.addresses import normalize_phone
from consentry.patients.models import Practice

log = logging.getLogger("consentry.webhooks")


def public_url(request: HttpRequest) -> str:
    """The URL Twilio signed: ours as the outside world sees it."""
    if settings.CONSENTRY_PUBLIC_URL:
        return settings.CONSENTRY_PUBLIC_URL + request.get_full_path()
    return request.build_absolute_uri()


def practice_for_twilio_request(request: HttpRequest) -> Practice | None:
    """The practice whose number was texted, if the request carries its valid signature.

    Anything unverifiable gets the same answer (None → 403) so the webhook does
    not reveal which numbers are hosted here.
    """
    signature = request.headers.get("X-Twilio-Signature", "")
    to = request.POST.get("To", "")
    if not signature or not to:
        return None
    try:
        number = normalize_phone(to, field="To").number
    except InvalidInput:
        return None
    practice = Practice.objects.filter(texting_number=number).first()
    if practice is None or not practice.twilio_auth_token:
        return None
    validator = RequestValidator(practice.twilio_auth_token)
    if not validator.validate(public_url(request), request.POST.dict(), signature):
        return None
    return practice


def twiml(status: int = 200) -> HttpResponse:
    return HttpResponse(str(MessagingResponse()), content_type="text/xml", status=status)


@csrf_exempt
@require_POST
def twilio_sms(request: HttpRequest) -> HttpResponse:
    practice = practice_for_twilio_request(request)
    if practice is None:
        return HttpResponse("signature does not verify", status=403, content_type="text/plain")
    sid, sender, body = (request.POST.get(k, "") for k in ("MessageSid", "From", "Body"))
    if not sid or not sender:
        return HttpResponse("From and MessageSid are required", status=400, content_type="text/plain")
    if len(sid) > 64:
        return HttpResponse("MessageSid is too long", status=400, content_type="text/plain")
    try:
        handle_inbound_sms(
            practice=practice, from_number=sender, to_number=practice.texting_number, body=body, provider_ref=sid
        )
    except InvalidInput as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    # Replies go out through the delivery pipeline, never inline in the TwiML,
    # so every outbound text is consent-checked and tracked the same way.
    return twiml()


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    """Twilio's status callback for a message or a call we sent."""
    sid = request.POST.get("MessageSid") or request.POST.get("CallSid") or ""
    provider_status = request.POST.get("MessageStatus") or request.POST.get("CallStatus") or ""
    delivery = Delivery.objects.select_related("practice").filter(provider_ref=sid).first() if sid else None
    # The signature is checked with the token of the practice that sent it; an
    # unknown id cannot be verified and gets the same 403 as a forgery.
    signature = request.headers.get("X-Twilio-Signature", "")
    if (
        delivery is None
        or not signature
        or not RequestValidator(delivery.practice.twilio_auth_token).validate(
            public_url(request), request.POST.dict(), signature
        )
    ):
        return HttpResponse("signature does not verify", status=403, content_type="text/plain")
    if not provider_status:
        return HttpResponse("MessageStatus or CallStatus is required", status=400, content_type="text/plain")
    apply_twilio_status(
        delivery=delivery, provider_status=provider_status, error_code=request.POST.get("ErrorCode", "")[:32]
    )
    return HttpResponse(status=204)
