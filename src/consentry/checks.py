"""Start-up refusals: a deployment must not run on demo secrets."""

from django.conf import settings
from django.core.checks import Error, Warning, register

from .settings import PLACEHOLDER_SECRET

# The tag of the product's own checks: the worker runs only these at start-up.
TAG = "consentry"


@register(TAG, deploy=False)
def secrets_are_set(app_configs, **kwargs):
    if settings.DEBUG or settings.DEMO_MODE:
        return []
    errors = []
    if settings.SECRET_KEY == PLACEHOLDER_SECRET:
        errors.append(
            Error(
                "SECRET_KEY is the placeholder.",
                hint="Set SECRET_KEY to a long random value, or DEBUG=1 / CONSENTRY_DEMO=1 for a local demo.",
                id="consentry.E001",
            )
        )
    if not settings.ENCRYPTION_KEYS_CONFIGURED:
        errors.append(
            Error(
                "CONSENTRY_ENCRYPTION_KEYS is not set.",
                hint="python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
                id="consentry.E002",
            )
        )
    return errors


@register(TAG, deploy=False)
def public_url_is_set(app_configs, **kwargs):
    if settings.DEBUG or settings.DEMO_MODE or settings.CONSENTRY_PUBLIC_URL:
        return []
    return [
        Warning(
            "CONSENTRY_PUBLIC_URL is not set: unsubscribe and opt-in links in email point at http://127.0.0.1:8000.",
            hint="Set CONSENTRY_PUBLIC_URL to the https:// address patients and Twilio reach this service at.",
            id="consentry.W001",
        )
    ]
