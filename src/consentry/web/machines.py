"""The WSGI application: providers' signed webhooks take a short way in, everything else the site's.

A provider's webhook is a machine's POST, signed with the practice's secret
and answered in XML or with no body: it has no session, no signed-in user, no
CSRF token (its views are exempt), no page to frame and no static file. The
site's middleware would still run for it, eleven steps of it, and a STOP's
webhook is the request a practice can least afford to answer slowly (carriers
retry one that is late, which multiplies the load). So those paths get a Django
handler of their own, with the middleware that does something for them: the
body size limit, the security headers (and HTTPS redirect where set), and the
webhook timings of ``/metrics``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

# Exact paths, as routed in consentry/urls.py; any other spelling of them takes the site's way.
MACHINE_PATHS = frozenset({"/webhooks/twilio/sms", "/webhooks/twilio/status"})
MACHINE_MIDDLEWARE = frozenset(
    {
        "consentry.web.middleware.BodySizeLimitMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "consentry.web.metrics.WebhookTimingMiddleware",
    }
)


class MachineHandler(WSGIHandler):
    """Django's WSGI handler with only ``MACHINE_MIDDLEWARE``, in the order ``settings.MIDDLEWARE`` has them."""

    def load_middleware(self, is_async: bool = False) -> None:
        # Django builds the chain from settings.MIDDLEWARE alone; this runs once, at start-up, before any
        # request is served, so the list is swapped for the build and put back.
        everything = settings.MIDDLEWARE
        settings.MIDDLEWARE = [path for path in everything if path in MACHINE_MIDDLEWARE]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = everything


class Application:
    """Route each request to the machines' handler or the site's by its path."""

    def __init__(self, site: WSGIHandler):
        self.site = site
        self.machines = MachineHandler()

    def __call__(self, environ, start_response):
        handler = self.machines if environ.get("PATH_INFO") in MACHINE_PATHS else self.site
        return handler(environ, start_response)
