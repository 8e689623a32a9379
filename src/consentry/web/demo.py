"""Demo and development deployments: what only they have, and the warning they carry.

A demo (``CONSENTRY_DEMO=1``) or development (``DEBUG=1``) deployment runs on
placeholder secrets and serves the sandbox's pages, which show every
practice's messages to anyone and let anyone text in as any phone. Nothing in
it is secure, so every page and the start-up of every process says so.
"""

from __future__ import annotations

from django.conf import settings

WARNING = (
    "DEMO MODE: nothing here is secure. The sandbox pages show every practice's messages to anyone, "
    "and the secrets are placeholders. Never put patient data in it."
)


def is_demo() -> bool:
    return bool(settings.DEBUG or settings.DEMO_MODE)


def sandbox_pages_on() -> bool:
    """The sandbox's pages and outbox: a demo or development deployment whose default provider is the sandbox."""
    return is_demo() and settings.CONSENTRY_PROVIDER == "sandbox"


def banner(request) -> dict:
    """Template context: ``demo_warning`` is shown at the top of every page of a demo deployment."""
    return {"demo_warning": WARNING if is_demo() else ""}


def startup_banner() -> str:
    """What a demo process prints when it starts, framed so that it cannot be missed in a log."""
    if not is_demo():
        return ""
    line = "!" * 78
    return f"{line}\n!! {WARNING}\n{line}"
