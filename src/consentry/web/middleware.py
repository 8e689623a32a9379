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
