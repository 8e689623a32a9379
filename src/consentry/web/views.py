from django.http import Http404, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase

from consentry.providers.models import SandboxMessage
from consentry.web.demo import WARNING, is_demo, sandbox_pages_on
from consentry.web.staff.accounts import sign_in
from consentry.web.staff.dashboard import dashboard


def index(request: HttpRequest) -> HttpResponseBase:
    """The staff app: the dashboard to a signed-in user, the sign-in page to anyone else.

    A client that asks for JSON (``Accept: application/json``) gets where the API lives instead.
    """
    if request.user.is_authenticated:
        return dashboard(request)
    if request.accepts("application/json") and not request.accepts("text/html"):
        return service_index(request)
    return sign_in(request)


def service_index(request: HttpRequest) -> JsonResponse:
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
                    "headers": r.headers,  # an email's own headers (List-Unsubscribe...), as the page shows them
                    "created_at": r.created_at.isoformat(),
                }
                for r in rows[:1000]
            ]
        }
    )
