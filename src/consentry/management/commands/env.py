"""`consentry env`: a production environment file, with fresh secrets, to start a deployment from."""

from __future__ import annotations

import secrets
import urllib.parse

from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone


class Command(BaseCommand):
    help = "Print a production .env with freshly generated secrets (SECRET_KEY, encryption key, metrics token)."
    requires_system_checks: list[str] = []  # it makes the configuration the checks ask for

    def add_arguments(self, parser):
        parser.add_argument(
            "--public-url",
            default="https://messages.example.org",
            help="The https:// address patients and Twilio reach the service at.",
        )
        parser.add_argument(
            "--database-url",
            default="postgres://consentry@127.0.0.1:5432/consentry",
            help="The PostgreSQL database (default: postgres://consentry@127.0.0.1:5432/consentry).",
        )

    def handle(self, *args, public_url: str, database_url: str, **options):
        url = urllib.parse.urlsplit(public_url)
        if url.scheme != "https" or not url.hostname or url.path not in ("", "/"):
            raise CommandError(f"--public-url must be an https:// address with no path, not {public_url!r}")
        self.stdout.write(
            "\n".join(
                [
                    f"# Consentry's production environment, generated {timezone.now():%Y-%m-%d}. It holds the keys:",
                    "# keep it readable by the service's user only. Load it before every consentry process",
                    "# (systemd EnvironmentFile=, docker --env-file, or: set -a; . ./.env; set +a).",
                    f"SECRET_KEY={secrets.token_urlsafe(50)}",
                    "# Encrypts patients' text at rest. Rotating: put a new key first, keep the old ones after it,",
                    "# then run `consentry encryption rotate`. Losing every key loses the encrypted data.",
                    f"CONSENTRY_ENCRYPTION_KEYS={Fernet.generate_key().decode()}",
                    f"CONSENTRY_PUBLIC_URL={public_url.rstrip('/')}",
                    f"ALLOWED_HOSTS={url.hostname}",
                    "# The TLS proxy in front of `consentry serve`/gunicorn, the only one believed about https.",
                    "CONSENTRY_TRUSTED_PROXY=127.0.0.1",
                    f"DATABASE_URL={database_url}",
                    "# Texts and calls through Twilio; each practice sets its own account (consentry practice update).",
                    "CONSENTRY_PROVIDER=twilio",
                    f"CONSENTRY_METRICS_TOKEN={secrets.token_urlsafe(32)}",
                    "",
                ]
            )
        )
