"""`consentry audit verify|export`: prove the consent ledger and hand it over."""

from __future__ import annotations

import csv
import json
import sys

from django.core.management.base import BaseCommand

from consentry.consent.ledger import projection_matches, verify_chain
from consentry.consent.selectors import EXPORT_FIELDS, export_rows, ledger_events
from consentry.patients.models import Practice

from .practice import _find


class Command(BaseCommand):
    help = "Verify the consent ledger's hash chain, or export the ledger."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="Recompute every hash; exit 1 at the first broken link.")
        verify.add_argument("--practice", help="The practice's id or texting number (default: every practice).")
        verify.add_argument("--json", action="store_true", help="Print one report per practice as a JSON list.")
        export = sub.add_parser("export", help="Write one practice's whole ledger to stdout.")
        export.add_argument("--practice", required=True, help="The practice's id or texting number.")
        export.add_argument("--format", choices=("csv", "json"), default="csv", help="csv (default) or json.")

    def handle(self, *args, action, **options):
        if options.get("practice"):
            practices = [_find(options["practice"])]  # a clear error for what names no practice
        else:
            practices = list(Practice.objects.order_by("created_at"))
        if action == "verify":
            return self._verify(practices, options["json"])
        return self._export(practices[0], options["format"])

    def _verify(self, practices, as_json: bool) -> None:
        reports = []
        for practice in practices:
            report = verify_chain(practice.pk)
            reports.append({**report.__dict__, "projection_matches": projection_matches(practice.pk)})
        if as_json:
            self.stdout.write(json.dumps(reports))
        else:
            for r in reports:
                verdict = "ok" if r["ok"] else f"BROKEN at event {r['broken_seq']}: {r['problem']}"
                self.stdout.write(
                    f"{r['practice_id']}: {r['checked']} events, chain {verdict}, "
                    f"projection {'matches' if r['projection_matches'] else 'DIFFERS'}"
                )
        if not all(r["ok"] and r["projection_matches"] for r in reports):
            sys.exit(1)

    def _export(self, practice: Practice, fmt: str) -> None:
        """Every event with its note (the free text kept encrypted beside the ledger), oldest first."""
        if fmt == "json":
            self.stdout.write(json.dumps(list(_export_rows(practice))))
            return
        writer = csv.writer(self.stdout)
        writer.writerow(EXPORT_FIELDS)
        for row in _export_rows(practice):
            writer.writerow([json.dumps(row[f], sort_keys=True) if f == "evidence" else row[f] for f in EXPORT_FIELDS])


def _export_rows(practice: Practice):
    return export_rows(ledger_events(practice.pk))
