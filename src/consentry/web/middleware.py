from csp.middleware import CSPMiddleware as LibraryCSPMiddleware
from django.conf import settings
from django.http import JsonResponse


class BodySizeLimitMiddleware:
    """Refuse oversized requests with 413 before anything reads them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "invalid Content-Length"}, status=400)
        if length > settings.MAX_REQUEST_BYTES:
            return JsonResponse(
                {"detail": f"request body is larger than {settings.MAX_REQUEST_BYTES} bytes"}, status=413
            )
        return self.get_response(request)


# A page's own refreshes (the inbox's poll, a report's live counts) send this header: they are
# not the person at work, so they do not keep an idle session alive.
REFRESH_HEADER = "X-Consentry-Refresh"


class StaffSessionMiddleware:
    """A signed-in staff user's session ends after ``SESSION_IDLE_SECONDS`` without a request of theirs.

    Every request made by the person saves the session, which moves its expiry (cookie and
    database) forward; a page's own refreshes do not.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and REFRESH_HEADER not in request.headers:
            request.session.modified = True
        return self.get_response(request)


class CSPMiddleware(LibraryCSPMiddleware):
    """django-csp's, minus building two policies for a response exempt from both (Twilio's XML answers):
    the library builds them for every response, and a STOP's webhook is answered thousands of times a minute."""

    def process_response(self, request, response):
        if getattr(response, "_csp_exempt", False) and getattr(response, "_csp_exempt_ro", False):
            return response
        return super().process_response(request, response)
