"""`consentry key create|list|revoke --practice ID`: a practice's API keys from the command line."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from consentry.errors import InvalidInput
from consentry.patients.models import ApiKey
from consentry.patients.practices import create_api_key, describe_api_key, revoke_api_key
from consentry.vocabulary import Scope

from .practice import _find


class Command(BaseCommand):
    help = "Manage a practice's API keys."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key and print its secret (shown once).")
        create.add_argument("--practice", required=True, help="The practice's id or texting number.")
        create.add_argument("--label", default="", help="Which system uses it, e.g. EHR sync.")
        create.add_argument(
            "--scopes",
            default=",".join(Scope),
            metavar="SCOPE[,SCOPE]",
            help=f"What it may do, among {', '.join(Scope)} (default: all).",
        )
        create.add_argument("--json", action="store_true", help='Print {"id", "label", "scopes", "key"} as JSON.')
        listing = sub.add_parser("list", help="The practice's keys (never their secrets).")
        listing.add_argument("--practice", required=True, help="The practice's id or texting number.")
        listing.add_argument("--json", action="store_true", help="Print the keys as a JSON list.")
        revoke = sub.add_parser("revoke", help="Revoke a key: it stops working at once.")
        revoke.add_argument("--practice", required=True, help="The practice's id or texting number.")
        revoke.add_argument("id", type=int, help="The key's id, as `key list` shows it.")

    def handle(self, *args, action, **options):
        practice = _find(options["practice"])
        try:
            if action == "create":
                scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
                key, secret = create_api_key(practice=practice, label=options["label"], scopes=scopes)
                if options["json"]:
                    self.stdout.write(json.dumps({**describe_api_key(key), "key": secret}))
                else:
                    self.stdout.write(f"API key {key.pk} ({', '.join(key.scopes)}), shown once: {secret}")
            elif action == "list":
                rows = [describe_api_key(k) for k in ApiKey.objects.filter(practice=practice).order_by("pk")]
                if options["json"]:
                    self.stdout.write(json.dumps(rows))
                for r in rows if not options["json"] else []:
                    state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"
                    self.stdout.write(f"{r['id']}\t{r['label'] or '-'}\t{','.join(r['scopes'])}\t{state}")
            else:
                revoke_api_key(practice=practice, key_id=options["id"])
                self.stdout.write(f"API key {options['id']} revoked")
        except InvalidInput as exc:
            raise CommandError(str(exc)) from exc
