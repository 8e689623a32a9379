from django.conf import settings
from django.http import Http404, HttpRequest, JsonResponse

from consentry.providers.models import SandboxMessage


def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "service": "consentry",
            "api": "/api/v1/",
            "docs": "/api/v1/docs",
            "openapi": "/api/v1/openapi.json",
            "sandbox": "/sandbox/" if settings.CONSENTRY_PROVIDER == "sandbox" else None,
            "sandbox_outbox": "/sandbox/outbox" if settings.CONSENTRY_PROVIDER == "sandbox" else None,
        }
    )


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def sandbox_outbox(request: HttpRequest) -> JsonResponse:
    """Everything the sandbox provider was asked to send (newest last)."""
    if settings.CONSENTRY_PROVIDER != "sandbox":
        raise Http404("the sandbox provider is not active")
    rows = SandboxMessage.objects.order_by("pk")
    if to := request.GET.get("to"):
        rows = rows.filter(to=to)
    return JsonResponse(
        {
            "messages": [
                {
                    "id": r.pk,
                    "practice_id": str(r.practice_id),
                    "delivery_id": r.delivery_id,
                    "channel": r.channel,
                    "to": r.to,
                    "from": r.sender,
                    "subject": r.subject,
                    "body": r.body,
                    "html": r.html,
                    "created_at": r.created_at.isoformat(),
                }
                for r in rows[:1000]
            ]
        }
    )
