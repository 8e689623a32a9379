"""Patients from a CSV file: every row checked first, then all of them written at once, or none.

The same file for the command line (``consentry import patients``) and the staff app's upload page;
``docs/import.md`` describes its columns. A file is refused as a whole (nothing written) when it
cannot be read or when a row is invalid, unless invalid rows are to be skipped: then the valid rows
are imported and the report lists the others (row, column, problem).

An import is a sync (``records/sync.py``) and keeps its rules: it never opts an address back in,
never unblocks a number, and when the practice keeps contact preferences in Consentry it does not
overwrite an existing patient's preferred phone, do-not-contact or marketing consent; the report
says what was kept and why. A row's external id finds the patient it updates (a row without one is
always a new patient), so importing the same file again changes nothing. An import adds a row's
phone and email to an existing patient's addresses and never takes one off.

New patients, the common case, are written in batches (contact points shared with the practice's
other patients, links, ledger events through ``ledger.record_many()``); existing patients who change
go through ``sync.update_from()`` one by one. Legacy opt-outs in the file (an old system's UNSUB
keyword) become ledger events with source ``import`` whose evidence names the file and the row.
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import IntegrityError, transaction

from consentry.bulk import insert_rows
from consentry.consent import address_lock, ledger
from consentry.consent.models import Source, Subject
from consentry.consent.rules import ConsentState
from consentry.errors import InvalidInput
from consentry.patients.addresses import LINE_TYPES, NormalizedPhone, normalize_email, normalize_phone
from consentry.patients.models import ContactKind, ContactPoint, Patient, PatientContact, Practice
from consentry.records.services import PhoneInput
from consentry.records.sync import ADDRESS_KEPT, KeptReason, PatientRecord, SyncChanges, held_back, update_from

log = logging.getLogger(__name__)

# The columns a file may have (header names are read case-insensitively; spaces and hyphens count
# as underscores). Only first_name is required.
COLUMNS = (
    "external_id",
    "first_name",
    "last_name",
    "phone",
    "line_type",
    "email",
    "preferred",
    "do_not_contact",
    "marketing_consent",
    "sms_opt_out",
    "email_unsubscribed",
)
REQUIRED = ("first_name",)
TRUE, FALSE = frozenset({"yes", "true", "1"}), frozenset({"no", "false", "0"})
MARKETING = ("yes", "no", "unknown")
DELIMITERS = (",", ";", "\t")

BATCH = 2000  # rows per write and per IN (...) read: far below SQLite's bound-parameter limit

FILE_ROW = 0  # a note's row when it is about the file as a whole
HEADER_ROW = 1  # the header is the file's first row; patients start at row 2


@dataclass(frozen=True)
class Note:
    """One line of the report: a problem, a warning or something kept, at a row and column of the file."""

    row: int  # 0: the file as a whole; 1: the header; 2 and on: a patient's row
    column: str  # "" when it is the row's (or the file's), not one cell's
    message: str
    reason: str = ""  # what was kept: sms_opted_out, consentry_keeps_contact_preferences...


@dataclass(frozen=True)
class Row:
    """A valid row, its values made canonical. ``None``: the cell was blank (the field is not sent)."""

    number: int
    external_id: str
    first_name: str
    last_name: str | None
    phone: NormalizedPhone | None
    line_type: str | None
    email: str | None
    preferred: bool | None
    do_not_contact: bool | None
    marketing_consent: str | None
    sms_opt_out: bool | None
    email_unsubscribed: bool | None


@dataclass
class Checked:
    rows: list[Row]  # the valid rows
    problems: list[Note]
    warnings: list[Note]
    total: int  # patient rows in the file (blank lines are not rows)

    @property
    def unreadable(self) -> bool:
        """The file itself (or its header) is at fault: no row can be imported."""
        return any(p.row <= HEADER_ROW for p in self.problems)

    @property
    def invalid_rows(self) -> int:
        return len({p.row for p in self.problems if p.row > HEADER_ROW})


@dataclass
class Report:
    """What an import did (or, dry run, would do), and every note for the file's rows."""

    file_name: str
    dry_run: bool
    skip_invalid: bool
    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # invalid rows left out (skip_invalid)
    sms_opt_outs: int = 0  # legacy SMS opt-outs recorded
    email_unsubscribes: int = 0  # legacy email unsubscribes recorded
    problems: list[Note] = field(default_factory=list)
    warnings: list[Note] = field(default_factory=list)
    kept: list[Note] = field(default_factory=list)
    refused: str = ""  # why nothing was (or would be) imported; "" otherwise

    @property
    def applied(self) -> bool:
        return not self.dry_run and not self.refused

    def lines(self) -> Iterable[tuple[int, str, str, str, str]]:
        """(row, column, kind, reason, message) of every note, in the file's order: kind is
        ``problem``, ``warning`` or ``kept``."""
        notes = [(n, "problem") for n in self.problems] + [(n, "warning") for n in self.warnings]
        notes += [(n, "kept") for n in self.kept]
        for note, kind in sorted(notes, key=lambda pair: pair[0].row):
            yield note.row, note.column, kind, note.reason, note.message

    def summary(self) -> str:
        if self.refused:
            return f"{self.file_name}: nothing imported: {self.refused}"
        parts = [f"{self.created:,} created", f"{self.updated:,} updated", f"{self.unchanged:,} unchanged"]
        if self.skipped:
            parts.append(f"{self.skipped:,} invalid skipped")
        text = f"{self.file_name}: {_count(self.total, 'row')}: {', '.join(parts)}; "
        text += f"{_count(self.sms_opt_outs, 'SMS opt-out')} and {_count(self.email_unsubscribes, 'email unsubscribe')}"
        text += " to record" if self.dry_run else " recorded"
        if self.kept:
            text += f"; kept as they were by the sync rules: {len(self.kept):,} (see the report)"
        return text + (". Dry run: nothing was changed." if self.dry_run else ".")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


# Called as the work goes on: ("check" or "write", done, total).
Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


# --- reading and checking ------------------------------------------------------------------------------------------


def check(data: bytes, *, region: str = "US", progress: Progress = _no_progress) -> Checked:
    """Read a file and check every row; nothing is written. The valid rows come back canonical."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return _refused(f"the file is not UTF-8 text (line {line}): save it as CSV UTF-8")
    first = text.split("\n", 1)[0]
    if not first.strip():
        return _refused("the file is empty: its first row must name the columns")
    delimiter = max(DELIMITERS, key=first.count)
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        return _refused(f"the file is not CSV: {exc}")
    names, problems, warnings = _header(records[0])
    body = [(number, cells) for number, cells in enumerate(records[1:], start=2) if any(c.strip() for c in cells)]
    if not body:
        problems.append(Note(FILE_ROW, "", "the file has no patient rows under its header"))
    if problems:
        return Checked([], problems, warnings, len(body))
    checker = _RowChecker(names, region)
    rows = []
    for done, (number, cells) in enumerate(body, start=1):
        row = checker.check(number, cells)
        if row is not None:
            rows.append(row)
        if done % 1000 == 0 or done == len(body):
            progress("check", done, len(body))
    return Checked(rows, checker.problems, warnings, len(body))


def _refused(message: str) -> Checked:
    return Checked([], [Note(FILE_ROW, "", message)], [], 0)


def column_name(header: str) -> str:
    """A header cell as a column's name: trimmed, lower case, spaces and hyphens as underscores."""
    return "_".join(header.strip().lower().replace("-", " ").split())


def _header(cells: list[str]) -> tuple[list[str], list[Note], list[Note]]:
    names = [column_name(c) for c in cells]
    problems, warnings = [], []
    for name in REQUIRED:
        if name not in names:
            problems.append(Note(HEADER_ROW, name, f"the header has no {name} column"))
    seen: set[str] = set()
    for name, cell in zip(names, cells, strict=True):
        if name in seen and name in COLUMNS:
            problems.append(Note(HEADER_ROW, name, f"the column {name} is named twice"))
        seen.add(name)
        if name not in COLUMNS and name:  # a blank name: a trailing delimiter, usually
            shown = cell.strip()[:60] or "(blank)"
            warnings.append(Note(HEADER_ROW, shown, f"unknown column {shown!r}: ignored"))
    return names, problems, warnings


class _RowChecker:
    """Checks rows one after another: it remembers external ids already seen, and phones already read."""

    def __init__(self, names: list[str], region: str):
        self.names, self.region = names, region
        self.problems: list[Note] = []
        self.external_ids: dict[str, int] = {}
        self.phones: dict[str, NormalizedPhone | InvalidInput] = {}  # families share numbers

    def check(self, number: int, cells: list[str]) -> Row | None:
        """The row, canonical; or None, its problems added (every one of them, not only the first)."""
        problems = len(self.problems)
        value = self._cells(number, cells)
        first_name = self._name(number, value, "first_name", required=True)
        last_name = self._name(number, value, "last_name", required=False)
        external_id = self._external_id(number, value.get("external_id", ""))
        phone = self._phone(number, value.get("phone", ""))
        line_type = self._choice(number, value, "line_type", LINE_TYPES)
        email = self._email(number, value.get("email", ""))
        preferred = self._flag(number, value, "preferred")
        sms_opt_out = self._flag(number, value, "sms_opt_out")
        for column, given in (("line_type", line_type), ("preferred", preferred), ("sms_opt_out", sms_opt_out)):
            if given and not value.get("phone"):
                self._add(number, column, "needs a phone on the same row")
        email_unsubscribed = self._flag(number, value, "email_unsubscribed")
        if email_unsubscribed and not value.get("email"):
            self._add(number, "email_unsubscribed", "needs an email on the same row")
        marketing = self._choice(number, value, "marketing_consent", MARKETING)
        do_not_contact = self._flag(number, value, "do_not_contact")
        if len(self.problems) > problems:
            return None
        return Row(
            number=number,
            external_id=external_id,
            first_name=first_name,
            last_name=last_name,
            phone=phone,
            line_type=line_type,
            email=email,
            preferred=preferred,
            do_not_contact=do_not_contact,
            marketing_consent=marketing,
            sms_opt_out=sms_opt_out,
            email_unsubscribed=email_unsubscribed,
        )

    def _cells(self, number: int, cells: list[str]) -> dict[str, str]:
        """The row's known columns, trimmed (a short row's missing cells are blank)."""
        if len(cells) > len(self.names) and any(c.strip() for c in cells[len(self.names) :]):
            self._add(number, "", f"the row has {len(cells)} cells, the header names {len(self.names)} columns")
        value: dict[str, str] = {}
        for name, cell in zip(self.names, cells, strict=False):
            if name in COLUMNS:
                if "\x00" in cell:
                    self._add(number, name, "holds a NUL character")
                value[name] = cell.strip()
        return value

    def _external_id(self, number: int, external_id: str) -> str:
        if len(external_id) > 128:
            self._add(number, "external_id", "is at most 128 characters")
        elif external_id in self.external_ids:
            self._add(number, "external_id", f"{external_id!r} is also on row {self.external_ids[external_id]}")
        elif external_id:
            self.external_ids[external_id] = number
        return external_id

    def _choice(self, number: int, value: dict[str, str], column: str, allowed: tuple[str, ...]) -> str | None:
        cell = value.get(column, "").lower()
        if cell and cell not in allowed:
            self._add(number, column, f"must be one of {', '.join(allowed)}, or blank")
        return cell or None

    def _email(self, number: int, raw: str) -> str | None:
        if not raw:
            return None
        try:
            return normalize_email(raw, field="email")
        except InvalidInput as exc:
            self._add(number, "email", exc.message)
            return None

    def _add(self, number: int, column: str, message: str) -> None:
        self.problems.append(Note(number, column, message))

    def _name(self, number: int, value: dict[str, str], column: str, *, required: bool) -> str:
        name = value.get(column, "")
        if required and not name:
            self._add(number, column, f"a {column.replace('_', ' ')} is required")
        elif len(name) > 100:
            self._add(number, column, "is at most 100 characters")
        return name

    def _flag(self, number: int, value: dict[str, str], column: str) -> bool | None:
        cell = value.get(column, "").lower()
        if cell in TRUE:
            return True
        if cell in FALSE:
            return False
        if cell:
            self._add(number, column, "must be yes, no, true, false, 1, 0, or blank")
        return None

    def _phone(self, number: int, raw: str) -> NormalizedPhone | None:
        if not raw:
            return None
        found = self.phones.get(raw)
        if found is None:
            try:
                found = normalize_phone(raw, region=self.region, field="phone")
            except InvalidInput as exc:
                found = exc
            self.phones[raw] = found
        if isinstance(found, InvalidInput):
            self._add(number, "phone", found.message)
            return None
        return found


# --- planning and writing ------------------------------------------------------------------------------------------


@dataclass
class _Existing:
    patient: Patient
    phones: list[tuple[str, str]]  # (number, line type), in the patient's order
    emails: list[str]


@dataclass
class _Plan:
    new: list[Row] = field(default_factory=list)
    changed: list[tuple[Row, Patient, PatientRecord]] = field(default_factory=list)
    unchanged: int = 0
    kept: list[Note] = field(default_factory=list)
    opt_outs: list[tuple[Row, Subject, str]] = field(default_factory=list)  # (row, sms or email, address)


KEPT_COLUMN = {
    "do_not_contact": "do_not_contact",
    "marketing_consent": "marketing_consent",
    "preferred_phone": "preferred",
}


def import_patients(
    practice: Practice,
    data: bytes,
    *,
    file_name: str,
    actor: str,
    dry_run: bool = False,
    skip_invalid: bool = False,
    progress: Progress = _no_progress,
) -> Report:
    """Check a file and, unless it is refused or this is a dry run, import it in one transaction."""
    checked = check(data, region=practice.region, progress=progress)
    report = Report(
        file_name=file_name,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
        total=checked.total,
        problems=checked.problems,
        warnings=checked.warnings,
    )
    if checked.unreadable:
        report.refused = "the file cannot be read (see the report)"
        return report
    if checked.problems and not skip_invalid:
        report.refused = (
            f"{checked.invalid_rows:,} of {checked.total:,} rows are invalid (see the report); "
            "fix them, or skip the invalid rows"
        )
        return report
    report.skipped = checked.invalid_rows
    if dry_run:
        plan = _plan(practice, checked.rows)
    else:
        try:
            with transaction.atomic():
                plan = _plan(practice, checked.rows)
                _write(practice, plan, file_name=file_name, actor=actor, progress=progress)
        except IntegrityError:  # a patient or an address created meanwhile, with an id or address of the file's
            log.warning("import of %s refused: the practice's records changed while it was written", file_name)
            report.refused = (
                "the practice's patients changed while the file was imported (a sync or another import at the "
                "same time); nothing was imported: import it again"
            )
            return report
    report.created, report.updated, report.unchanged = len(plan.new), len(plan.changed), plan.unchanged
    report.sms_opt_outs = sum(1 for _, subject, _ in plan.opt_outs if subject == Subject.SMS)
    report.email_unsubscribes = len(plan.opt_outs) - report.sms_opt_outs
    report.kept = plan.kept
    return report


def _plan(practice: Practice, rows: list[Row]) -> _Plan:
    """What each row does: a new patient, a change to one (what the sync rules keep, kept), or nothing."""
    existing = _existing(practice, [r.external_id for r in rows if r.external_id])
    addresses = [a for r in rows for a in (r.phone.number if r.phone else None, r.email) if a]
    state = ledger.consent_state(practice.pk, addresses)
    plan = _Plan()
    queued: set[str] = set()
    for row in rows:
        plan.kept += _address_notes(row, state)
        found = existing.get(row.external_id) if row.external_id else None
        if found is None:
            plan.new.append(row)
        else:
            record, kept = _change(practice, row, found)
            plan.kept += kept
            if record is None:
                plan.unchanged += 1
            else:
                plan.changed.append((row, found.patient, record))
        if row.sms_opt_out and row.phone and not _any(row.phone.number, state.sms_opted_out, queued):
            plan.opt_outs.append((row, Subject.SMS, row.phone.number))
            queued.add(row.phone.number)
        # A bounced address stays bounced: it gets nothing already.
        if (
            row.email_unsubscribed
            and row.email
            and not _any(row.email, state.email_unsubscribed, state.email_bounced, queued)
        ):
            plan.opt_outs.append((row, Subject.EMAIL, row.email))
            queued.add(row.email)
    return plan


def _any(address: str, *sets: Container[str]) -> bool:
    return any(address in s for s in sets)


def _existing(practice: Practice, external_ids: list[str]) -> dict[str, _Existing]:
    found: dict[str, _Existing] = {}
    for start in range(0, len(external_ids), BATCH):
        chunk = external_ids[start : start + BATCH]
        patients = {
            p.pk: p
            for p in Patient.objects.filter(practice=practice, external_id__in=chunk).select_related("preferred_phone")
        }
        for patient in patients.values():
            patient.practice = practice  # one instance for every row (the sync rules read its settings)
            found[patient.external_id] = _Existing(patient, [], [])
        links = (
            PatientContact.objects.filter(patient_id__in=list(patients))
            .order_by("patient_id", "position")
            .values_list("patient_id", "contact_point__address", "contact_point__kind", "contact_point__line_type")
        )
        for patient_id, address, kind, line_type in links:
            entry = found[patients[patient_id].external_id]
            if kind == ContactKind.PHONE:
                entry.phones.append((address, line_type))
            else:
                entry.emails.append(address)
    return found


def _address_notes(row: Row, state: ConsentState) -> list[Note]:
    """The person's choice (or the practice's block) that stays with the row's phone and email, unless
    the row says the same itself (a file imported again)."""
    kept = []
    phone, email = row.phone.number if row.phone else None, row.email
    if phone and phone in state.sms_opted_out and not row.sms_opt_out:
        kept.append(("phone", KeptReason.SMS_OPTED_OUT))
    if phone and phone in state.blocks:
        kept.append(("phone", KeptReason.BLOCKED))
    if email and email in state.email_unsubscribed and not row.email_unsubscribed:
        kept.append(("email", KeptReason.EMAIL_UNSUBSCRIBED))
    if email and email in state.email_bounced:
        kept.append(("email", KeptReason.EMAIL_BOUNCED))
    return [Note(row.number, column, ADDRESS_KEPT[reason], reason) for column, reason in kept]


def _change(practice: Practice, row: Row, found: _Existing) -> tuple[PatientRecord | None, list[Note]]:
    """The change a row makes to an existing patient, as a sync's record of what differs (None: nothing
    does), and what the sync rules keep. The row's phone and email are added to the patient's, never
    replace them."""
    patient = found.patient
    phones: list[PhoneInput] | None = None
    if row.phone:
        number, line_type = row.phone.number, row.line_type or "unknown"
        current = dict(found.phones)
        if number not in current:
            phones = [PhoneInput(n, t) for n, t in found.phones] + [PhoneInput(number, line_type)]
        elif line_type != "unknown" and line_type != current[number]:  # the newest known line type wins
            phones = [PhoneInput(n, line_type if n == number else t) for n, t in found.phones]
    emails = None
    if row.email and row.email not in found.emails:
        emails = [*found.emails, row.email]
    preferred = patient.preferred_phone.address if patient.preferred_phone else None
    record = PatientRecord(
        first_name=_differing(row.first_name, patient.first_name),
        last_name=_differing(row.last_name, patient.last_name),
        phones=phones,
        emails=emails,
        preferred_phone=_differing(row.phone.number if row.preferred and row.phone else None, preferred),
        do_not_contact=_differing(row.do_not_contact, patient.do_not_contact),
        marketing_consent=_differing(row.marketing_consent, patient.marketing_consent),
    )
    if record == PatientRecord():
        return None, []
    changes, kept = held_back(
        patient,
        SyncChanges(
            preferred_phone=record.preferred_phone,
            do_not_contact=record.do_not_contact,
            marketing_consent=record.marketing_consent,
        ),
        phones=None if phones is None else [p.number for p in phones],
    )
    notes = [Note(row.number, KEPT_COLUMN.get(k.field, k.field), k.message, k.reason) for k in kept]
    applied = replace(
        record,
        preferred_phone=changes.preferred_phone,
        do_not_contact=changes.do_not_contact,
        marketing_consent=changes.marketing_consent,
    )
    return (None if applied == PatientRecord() else record), notes


def _differing(sent, current):
    """What a row sends for a field when it differs from the patient's; None (not sent) otherwise."""
    return None if sent is None or sent == current else sent


def _write(practice: Practice, plan: _Plan, *, file_name: str, actor: str, progress: Progress) -> None:
    """New patients in batches, then each changed patient, then the ledger events in one append. The
    practice's ledger lock is taken last (or by an update's consent change), so the practice's sends
    and received texts wait for it as briefly as they can; under it, the opt-outs to record are read
    again."""
    total = len(plan.changed) + len(plan.new)
    created = _create(practice, plan.new, lambda n: progress("write", n, total))
    for done, (_row, patient, record) in enumerate(plan.changed, start=len(plan.new) + 1):
        update_from(patient, record, source=Source.IMPORT, actor=actor)
        if done % 100 == 0:
            progress("write", done, total)

    def evidence(row: Row, column: str) -> ledger.Evidence:
        return {"file": file_name, "row": row.number, "column": column}

    changes: list[ledger.Change] = []
    for row, patient_id in created:
        subject = ledger.patient_subject(patient_id)
        if row.marketing_consent and row.marketing_consent != "unknown":  # a new patient's is unknown
            changes.append(
                ledger.Change(Subject.MARKETING, subject, row.marketing_consent, evidence(row, "marketing_consent"))
            )
        if row.do_not_contact:
            changes.append(ledger.Change(Subject.DO_NOT_CONTACT, subject, "on", evidence(row, "do_not_contact")))
    ledger.lock(practice.pk)
    state = ledger.consent_state(practice.pk, [address for _, _, address in plan.opt_outs])

    def recorded(subject: Subject, address: str) -> bool:  # since the plan read it (a STOP meanwhile)
        if subject == Subject.SMS:
            return address in state.sms_opted_out
        return _any(address, state.email_unsubscribed, state.email_bounced)

    plan.opt_outs = [(row, s, address) for row, s, address in plan.opt_outs if not recorded(s, address)]
    for row, subject, address in plan.opt_outs:
        if subject == Subject.SMS:
            changes.append(ledger.Change(Subject.SMS, address, "opted_out", evidence(row, "sms_opt_out")))
        else:
            changes.append(ledger.Change(Subject.EMAIL, address, "unsubscribed", evidence(row, "email_unsubscribed")))
    for address in sorted(address for _, _, address in plan.opt_outs):
        address_lock.for_change(practice.pk, address)  # waits for a hand-over to it in flight, as one STOP does
    ledger.record_many(practice=practice, changes=changes, source=Source.IMPORT, actor=actor)
    progress("write", total, total)


def _create(practice: Practice, rows: list[Row], progress: Callable[[int], None]) -> list[tuple[Row, uuid.UUID]]:
    """New patients in batches: their contact points (an address already at the practice is shared, its
    newest known line type kept), the patients, their links. Each row with its new patient's id."""
    phones: dict[str, tuple[NormalizedPhone, str]] = {}
    emails: dict[str, None] = {}
    for row in rows:
        if row.phone:
            known = phones.get(row.phone.number, (row.phone, "unknown"))[1]
            line_type = row.line_type if row.line_type and row.line_type != "unknown" else known
            phones[row.phone.number] = (row.phone, line_type)
        if row.email:
            emails[row.email] = None
    points = _points(practice, phones, list(emails))
    created = []
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        patients, links = [], []
        for row in batch:
            patient_id = uuid.uuid4()
            patients.append(
                {
                    "id": patient_id,
                    "practice_id": practice.pk,
                    "external_id": row.external_id,
                    "first_name": row.first_name,
                    "last_name": row.last_name or "",
                    "preferred_phone_id": points[row.phone.number] if row.preferred and row.phone else None,
                }
            )
            for position, address in enumerate(a for a in (row.phone and row.phone.number, row.email) if a):
                links.append({"patient_id": patient_id, "contact_point_id": points[address], "position": position})
            created.append((row, patient_id))
        insert_rows(Patient, patients)
        insert_rows(PatientContact, links)
        progress(start + len(batch))
    return created


def _points(practice: Practice, phones: dict[str, tuple[NormalizedPhone, str]], emails: list[str]) -> dict[str, int]:
    """The contact point of each address, by address: the practice's own when it has one, else new."""
    addresses = [*phones, *emails]
    found: dict[str, ContactPoint] = {}
    for start in range(0, len(addresses), BATCH):
        chunk = addresses[start : start + BATCH]
        found.update(
            (p.address, p)
            for p in ContactPoint.objects.filter(practice=practice, address__in=chunk).only(
                "id", "address", "line_type"
            )
        )
    retyped = []
    for number, (_, line_type) in phones.items():
        point = found.get(number)
        if point is not None and line_type != "unknown" and point.line_type != line_type:
            point.line_type = line_type
            retyped.append(point)
    ContactPoint.objects.bulk_update(retyped, ["line_type"], batch_size=BATCH)
    new: list[dict[str, Any]] = [
        {
            "practice_id": practice.pk,
            "address": number,
            "kind": ContactKind.PHONE.value,
            "line_type": line_type,
            "valid": phone.valid,
            "timezone": phone.timezone,
        }
        for number, (phone, line_type) in phones.items()
        if number not in found
    ]
    new += [
        {
            "practice_id": practice.pk,
            "address": e,
            "kind": ContactKind.EMAIL.value,
            "line_type": "unknown",
            "valid": True,
            "timezone": "",
        }
        for e in emails
        if e not in found
    ]
    for start in range(0, len(new), BATCH):
        insert_rows(ContactPoint, new[start : start + BATCH])
    ids = {address: point.pk for address, point in found.items()}
    added = [point["address"] for point in new]
    for start in range(0, len(added), BATCH):
        chunk = added[start : start + BATCH]
        ids.update(ContactPoint.objects.filter(practice=practice, address__in=chunk).values_list("address", "id"))
    return ids
