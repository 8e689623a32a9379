"""Start-up refusals: a deployment must not run on demo secrets, nor deliver to the sandbox."""

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.db import DatabaseError

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
        Error(
            "CONSENTRY_PUBLIC_URL is not set: links in email and texts, and Twilio's callbacks, need it.",
            hint="Set CONSENTRY_PUBLIC_URL to the https:// address patients and Twilio reach this service at.",
            id="consentry.E005",
        )
    ]


@register(TAG, deploy=False)
def practices_have_an_email_from(app_configs, databases=None, **kwargs):
    """A practice without a From of its own sends from noreply@ the public URL's domain: say so."""
    if settings.DEBUG or settings.DEMO_MODE:
        return []
    from consentry.patients.models import Practice, default_email_from

    try:
        names = list(Practice.objects.filter(email_from="").order_by("name").values_list("name", flat=True)[:20])
    except DatabaseError:
        return []  # before the first migrate
    return [
        Warning(
            f"{name} has no email From: its email goes from {default_email_from()}.",
            hint="Set one: consentry practice update ID --email-from 'Name <address@your-domain>'.",
            id="consentry.W002",
        )
        for name in names
    ]


@register(TAG, deploy=False)
def no_sandbox_in_production(app_configs, databases=None, **kwargs):
    """Outside a demo, nothing may be delivered to the sandbox: it keeps messages where patients never see them.

    The default provider must be a real one, and no practice may have chosen
    the sandbox for a channel (read from the database when it is there).
    """
    if settings.DEBUG or settings.DEMO_MODE:
        return []
    errors = []
    if settings.CONSENTRY_PROVIDER == "sandbox":
        errors.append(
            Error(
                "CONSENTRY_PROVIDER is the sandbox: every practice without a provider of its own would deliver "
                "its messages to this machine instead of to patients.",
                hint="Set CONSENTRY_PROVIDER to twilio (and give practices an email provider), "
                "or CONSENTRY_DEMO=1 for a demo with no real patients.",
                id="consentry.E003",
            )
        )
    from django.db.models import Q

    from consentry.patients.models import Practice

    try:
        names = list(
            Practice.objects.filter(Q(sms_provider="sandbox") | Q(email_provider="sandbox"))
            .order_by("name")
            .values_list("name", flat=True)[:10]
        )
    except DatabaseError:  # not migrated yet (``consentry migrate`` runs these checks first): no practices
        names = []
    if names:
        errors.append(
            Error(
                f"These practices deliver to the sandbox: {', '.join(names)}.",
                hint="Give them a real provider, or run a demo deployment (CONSENTRY_DEMO=1).",
                id="consentry.E004",
            )
        )
    return errors
