"""Provider webhooks as thin glue: the provider's module checks and parses, one service acts."""

from __future__ import annotations

from csp.decorators import csp_exempt
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.twiml.messaging_response import MessagingResponse

from consentry.conversations.inbound import receive_inbound_text
from consentry.errors import InvalidInput
from consentry.messaging.models import Delivery
from consentry.messaging.status import apply_status
from consentry.patients.locations import RouteChanged
from consentry.providers.twilio import webhooks as twilio
from consentry.providers.twilio.webhooks import public_url

__all__ = ["public_url", "twilio_sms", "twilio_status"]


EMPTY_TWIML = str(MessagingResponse())


def _refused(status: int, text: str) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain")


@csrf_exempt
@csp_exempt()  # an XML answer to Twilio: no page, no policy to build
@csp_exempt(REPORT_ONLY=True)
@require_POST
def twilio_sms(request: HttpRequest) -> HttpResponse:
    for fresh in (False, True, True):
        try:
            # Stored (a STOP is in force from here) and answered; the worker reads it a moment later.
            receive_inbound_text(twilio.inbound_text(request, fresh=fresh))
            break
        except RouteChanged:
            continue  # the number's practice, token or settings changed since this process read them: again
        except twilio.NotVerified:
            return _refused(403, "signature does not verify")
        except InvalidInput as exc:
            return _refused(400, str(exc))
    else:  # changed under it three times running: Twilio tries the fallback URL, or the text again later
        return _refused(503, "the number's settings are changing; try again")
    # Replies go out through the delivery pipeline, never inline in the TwiML,
    # so every outbound text is consent-checked and tracked the same way.
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


def _sent_by_us(sid: str) -> Delivery | None:
    return Delivery.objects.select_related("practice").filter(provider_ref=sid).first()


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    """Twilio's status callback for a message or a call we sent."""
    found: dict[str, Delivery] = {}

    def token_for(sid: str) -> str | None:
        # The signature is checked with the token of the practice that sent it.
        if delivery := _sent_by_us(sid):
            found[sid] = delivery
            return delivery.practice.twilio_auth_token
        return None

    try:
        report = twilio.status_report(request, token_for)
    except twilio.NotVerified:
        return _refused(403, "signature does not verify")
    except InvalidInput as exc:
        return _refused(400, exc.message)
    apply_status(delivery=found[report.provider_ref], report=report)
    return HttpResponse(status=204)
