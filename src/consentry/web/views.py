from django.http import Http404, HttpRequest, JsonResponse

from consentry.providers.models import SandboxMessage
from consentry.web.demo import WARNING, is_demo, sandbox_pages_on


def index(request: HttpRequest) -> JsonResponse:
    sandbox = sandbox_pages_on()
    body = {
        "service": "consentry",
        "api": "/api/v1/",
        "docs": "/api/v1/docs",
        "openapi": "/api/v1/openapi.json",
        "sandbox": "/sandbox/" if sandbox else None,
        "sandbox_outbox": "/sandbox/outbox" if sandbox else None,
    }
    if is_demo():
        body["warning"] = WARNING
    return JsonResponse(body)


def sandbox_outbox(request: HttpRequest) -> JsonResponse:
    """Everything the sandbox provider was asked to send (newest last); only in a demo deployment."""
    if not sandbox_pages_on():
        raise Http404("the sandbox exists only in a demo deployment")
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
