"""`consentry import patients FILE.csv --practice ID`: a practice's patients from a CSV file.

Every row is checked before anything is written; a file with an invalid row is refused as a whole
(exit status 1, nothing changed) unless ``--skip-invalid``. The columns, their values and the rules
an import keeps: docs/import.md.
"""

from __future__ import annotations

import csv
import getpass
import sys
from pathlib import Path
from typing import TextIO

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from consentry.records.imports import Report, import_patients

from .practice import _find

SHOWN = 50  # report lines printed; --report FILE has them all
STAGES = {"check": "checking rows", "write": "writing"}


class Command(BaseCommand):
    help = "Import records from a file."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="what", required=True)
        patients = sub.add_parser(
            "patients",
            help="Patients from a CSV file (UTF-8; the first row names the columns: see docs/import.md).",
        )
        patients.add_argument(
            "file", metavar="FILE.csv", help="A header row, then one patient a row: the columns are in docs/import.md."
        )
        patients.add_argument("--practice", required=True, help="The practice's id or texting number.")
        patients.add_argument(
            "--dry-run", action="store_true", help="Check the file and say what it would do; change nothing."
        )
        patients.add_argument(
            "--skip-invalid",
            action="store_true",
            help="Import the valid rows and report the others (by default one invalid row refuses the whole file).",
        )
        patients.add_argument(
            "--report", metavar="FILE", help="Also write the whole report as CSV: row, column, kind, reason, message."
        )
        patients.add_argument(
            "--actor", default=None, help="Who the consent ledger names as the importer (default: cli:<user>)."
        )

    def handle(self, *args, what, **options):
        practice = _find(options["practice"])
        path = Path(options["file"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"{options['file']}: {exc.strerror or exc}") from None
        report_file = _open_report(options.get("report"))  # before anything is written: it may not open
        bars = _Bars()
        try:
            report = import_patients(
                practice,
                data,
                file_name=path.name,
                actor=options["actor"] or _actor(),
                dry_run=options["dry_run"],
                skip_invalid=options["skip_invalid"],
                progress=bars,
            )
            lines = list(report.lines())
            if report_file is not None:
                writer = csv.writer(report_file)
                writer.writerow(["row", "column", "kind", "reason", "message"])
                writer.writerows(lines)
        finally:
            bars.close()
            if report_file is not None:
                report_file.close()
        self._show(report, lines, more_in_file=report_file is not None)
        if report.refused:
            raise CommandError(f"{report.file_name} refused: {report.refused}")

    def _show(self, report: Report, lines: list, *, more_in_file: bool) -> None:
        if lines:
            self.stdout.write(f"{'row':>7}  {'column':<20} {'kind':<8} message")
            for row, column, kind, _reason, message in lines[:SHOWN]:
                self.stdout.write(f"{row or 'file':>7}  {column or '-':<20} {kind:<8} {message}")
            if len(lines) > SHOWN:
                where = " (all of them in the report file)" if more_in_file else " (--report FILE writes them all)"
                self.stdout.write(f"... and {len(lines) - SHOWN:,} more{where}")
        if not report.refused:
            self.stdout.write(report.summary())


def _open_report(name: str | None) -> TextIO | None:
    if not name:
        return None
    try:
        return open(name, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed once written)
    except OSError as exc:
        raise CommandError(f"--report {name}: {exc.strerror or exc}") from None


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in this environment
        return "cli"


class _Bars:
    """A progress bar per stage on standard error (none when it is not a terminal)."""

    def __init__(self) -> None:
        self.bars: dict[str, tqdm] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(
                total=total, desc=STAGES.get(stage, stage), unit=" rows", file=sys.stderr, disable=None
            )
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
