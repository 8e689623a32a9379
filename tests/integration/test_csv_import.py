"""Patients from a CSV file: the command line (``consentry import patients``) and the admins' upload page.

Every row is checked first; a file with an invalid row changes nothing unless invalid rows are
skipped; legacy opt-outs become ledger events (source ``import``, the file and the row as evidence)
that the send decision honours; the same file imported again changes nothing; the sync rules keep
what they keep, and the report says so.
"""

from __future__ import annotations

import csv
import hashlib
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from consentry.accounts.models import Membership
from consentry.consent import ledger
from consentry.consent import services as consent
from consentry.consent.models import ConsentEvent, Source
from consentry.patients.models import ContactPoint, Patient, PatientContact
from consentry.records.imports import import_patients
from consentry.records.services import update_patient
from tests.conftest import Api, make_patient, make_practice, make_staff, signed_in

pytestmark = pytest.mark.django_db

HEADER = "external_id,first_name,last_name,phone,line_type,email,preferred,do_not_contact,marketing_consent,sms_opt_out,email_unsubscribed"
GOOD = f"""{HEADER}
p-1,Ava,Rivera,(415) 555-0111,mobile,Ava.Rivera@Example.com,yes,no,yes,,
p-2,Ben,Rivera,415-555-0111,,ben@example.com,,yes,no,,
p-3,Cy,Lee,+1 415 555 0133,landline,cy@example.com,,,,,
"""
LEGACY = f"""{HEADER}
old-1,Dee,Ortiz,(415) 555-0144,mobile,dee@example.com,,,,yes,no
old-2,Eli,Ortiz,(415) 555-0155,mobile,eli@example.com,,,,no,yes
"""
BAD = f"""{HEADER}
p-1,Ava,Rivera,(415) 555-0111,mobile,ava@example.com,,,,,
p-2,,Rivera,not a phone,cell,ben@,maybe,,perhaps,,
p-3,Cy,Lee,(415) 555-0133,,cy@example.com,,,,,
p-1,Dup,Lee,,,,,,,yes,
"""


def write(tmp_path, text: str, name: str = "patients.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def run_import(practice, path, *options):
    """The command, as an operator runs it; its standard output."""
    out = io.StringIO()
    call_command("import", "patients", str(path), "--practice", str(practice.pk), *options, stdout=out)
    return out.getvalue()


def report_lines(out: str, kind: str) -> list[list[str]]:
    """The report's lines of one kind, as printed by the command: [row, column, kind, message]."""
    return [parts for line in out.splitlines() if len(parts := line.split(None, 3)) == 4 and parts[2] == kind]


def counts():
    return (
        Patient.objects.count(),
        ContactPoint.objects.count(),
        PatientContact.objects.count(),
        ConsentEvent.objects.count(),
    )


# --- the command line -------------------------------------------------------------------------------------------------


def test_a_dry_run_reports_every_problem_by_row_and_column_and_changes_nothing(practice, tmp_path):
    path = write(tmp_path, BAD)
    out = io.StringIO()
    with pytest.raises(CommandError, match="patients.csv refused: 2 of 4 rows are invalid"):
        call_command("import", "patients", str(path), "--practice", str(practice.pk), "--dry-run", stdout=out)
    report = out.getvalue()
    for row, column, problem in [
        (3, "first_name", "a first name is required"),
        (3, "phone", "not a phone number: 'not a phone'"),
        (3, "line_type", "must be one of mobile, landline, voip, unknown"),
        (3, "email", "not an email address: 'ben@'"),
        (3, "preferred", "must be yes, no, true, false, 1, 0, or blank"),
        (3, "marketing_consent", "must be one of yes, no, unknown, or blank"),
        (5, "external_id", "'p-1' is also on row 2"),
        (5, "sms_opt_out", "needs a phone on the same row"),
    ]:
        assert any(
            line.split()[:3] == [str(row), column, "problem"] and problem in line for line in report.splitlines()
        ), (row, column, problem, report)
    assert counts() == (0, 0, 0, 0)


def test_a_dry_run_of_a_good_file_says_what_it_would_do_and_changes_nothing(practice, tmp_path):
    out = run_import(practice, write(tmp_path, GOOD), "--dry-run")
    assert "3 rows: 3 created, 0 updated, 0 unchanged" in out and "Dry run: nothing was changed" in out
    assert counts() == (0, 0, 0, 0)


def test_one_invalid_row_refuses_the_whole_file(practice, tmp_path):
    with pytest.raises(CommandError, match="refused"):
        run_import(practice, write(tmp_path, BAD))
    assert counts() == (0, 0, 0, 0)


def test_skip_invalid_imports_the_good_rows_and_reports_the_others(practice, tmp_path):
    report_file = tmp_path / "report.csv"
    out = run_import(practice, write(tmp_path, BAD), "--skip-invalid", "--report", str(report_file))
    assert "4 rows: 2 created, 0 updated, 0 unchanged, 2 invalid skipped" in out
    assert sorted(Patient.objects.values_list("external_id", "first_name")) == [("p-1", "Ava"), ("p-3", "Cy")]
    with report_file.open(newline="") as f:
        lines = list(csv.DictReader(f))
    assert {(line["row"], line["column"], line["kind"]) for line in lines} >= {
        ("3", "first_name", "problem"),
        ("3", "phone", "problem"),
        ("5", "external_id", "problem"),
    }
    assert {line["row"] for line in lines} == {"3", "5"}
    # The skipped row's opt-out (row 5) is not recorded: the row was not imported.
    assert not ConsentEvent.objects.filter(subject="sms").exists()


def test_new_patients_share_a_phone_and_get_their_flags_from_the_ledger(practice, tmp_path):
    out = run_import(practice, write(tmp_path, GOOD))
    assert "3 rows: 3 created" in out
    ava, ben, cy = (Patient.objects.get(external_id=f"p-{i}") for i in (1, 2, 3))
    shared = ContactPoint.objects.get(address="+14155550111")
    assert shared.line_type == "mobile" and set(shared.patients.all()) == {ava, ben}
    assert ava.preferred_phone == shared and ben.preferred_phone is None
    assert list(ava.contacts.order_by("position").values_list("contact_point__address", flat=True)) == [
        "+14155550111",
        "ava.rivera@example.com",
    ]
    assert ContactPoint.objects.get(address="+14155550133").line_type == "landline"
    assert (ava.marketing_consent, ava.do_not_contact) == ("yes", False)
    assert (ben.marketing_consent, ben.do_not_contact) == ("no", True)
    assert (cy.marketing_consent, cy.do_not_contact, cy.last_name) == ("unknown", False, "Lee")
    events = {(e.subject, e.address, e.state): e for e in ConsentEvent.objects.all()}
    assert set(events) == {
        ("marketing", f"patient:{ava.pk}", "yes"),
        ("marketing", f"patient:{ben.pk}", "no"),
        ("do_not_contact", f"patient:{ben.pk}", "on"),
    }
    assert events[("do_not_contact", f"patient:{ben.pk}", "on")].evidence == {
        "file": "patients.csv",
        "row": 3,
        "column": "do_not_contact",
    }
    assert {e.source for e in events.values()} == {"import"}
    assert ledger.verify_chain(practice.pk).ok and ledger.projection_matches(practice.pk)


def test_an_address_already_at_the_practice_is_shared_not_copied(practice, tmp_path):
    parent = make_patient(practice, "Gus", phones=[("+14155550111", "unknown")], emails=["ava.rivera@example.com"])
    run_import(practice, write(tmp_path, GOOD))
    assert ContactPoint.objects.filter(address="+14155550111").count() == 1
    point = ContactPoint.objects.get(address="+14155550111")
    assert point.line_type == "mobile"  # the newest known line type wins, as in a sync
    assert parent in point.patients.all() and point.patients.count() == 3
    assert ContactPoint.objects.filter(address="ava.rivera@example.com").count() == 1


def test_legacy_opt_outs_become_ledger_events_that_the_send_decision_honours(practice_and_key, tmp_path):
    practice, key = practice_and_key
    api = Api(key)
    # A number opted out one by one (a STOP), for comparison.
    make_patient(practice, "Fay", phones=[("+14155550166", "mobile")], external_id="stop-1")
    consent.record_sms_opt_out(practice=practice, number="+14155550166", source=Source.SMS_KEYWORD, actor="x")
    out = run_import(practice, write(tmp_path, LEGACY, name="old-system.csv"))
    assert "1 SMS opt-out and 1 email unsubscribe recorded" in out
    sms = ConsentEvent.objects.get(subject="sms", address="+14155550144")
    email = ConsentEvent.objects.get(subject="email", address="eli@example.com")
    assert (sms.state, sms.source, sms.evidence) == (
        "opted_out",
        "import",
        {"file": "old-system.csv", "row": 2, "column": "sms_opt_out"},
    )
    assert (email.state, email.source, email.evidence) == (
        "unsubscribed",
        "import",
        {"file": "old-system.csv", "row": 3, "column": "email_unsubscribed"},
    )
    # "no" records nothing: it is not an opt-in.
    assert not ConsentEvent.objects.filter(address__in=["+14155550155", "dee@example.com"]).exists()
    out = io.StringIO()
    call_command("audit", "verify", "--practice", str(practice.pk), stdout=out)
    assert "chain ok, projection matches" in out.getvalue()

    dee, eli, fay = (Patient.objects.get(external_id=e) for e in ("old-1", "old-2", "stop-1"))
    answer = api.post(
        "/messages",
        {
            "kind": "manual",
            "category": "document_shared",
            "patient_ids": [str(dee.pk), str(fay.pk), str(eli.pk)],
            "content": {"sms": "Your forms are ready"},
        },
    )
    assert answer.status_code == 202, answer.content
    sms = {d["patient_id"]: (d["status"], d["reason"]) for d in answer.json()["deliveries"] if d["channel"] == "sms"}
    # The imported opt-out is skipped exactly as the one texted in.
    assert sms[str(dee.pk)] == sms[str(fay.pk)] == ("skipped", "sms_opted_out")
    assert sms[str(eli.pk)] == ("pending", None)
    assert api.get("/contacts/status", address="eli@example.com").json()["email"] == "unsubscribed"


def test_an_import_never_undoes_an_opt_out_and_says_what_it_kept(practice, tmp_path):
    run_import(practice, write(tmp_path, LEGACY))
    consent.set_block(practice=practice, number="+14155550155", categories=["recall"], source="staff", actor="x")
    before = ConsentEvent.objects.count()
    again = LEGACY.replace(",yes,no\n", ",no,no\n").replace(",no,yes\n", ",no,no\n")
    out = run_import(practice, write(tmp_path, again, name="again.csv"))
    assert ConsentEvent.objects.count() == before
    state = ledger.consent_state(practice.pk, ["+14155550144", "eli@example.com", "+14155550155"])
    assert "+14155550144" in state.sms_opted_out and "eli@example.com" in state.email_unsubscribed
    assert state.blocks["+14155550155"] == frozenset({"recall"})
    kept = report_lines(out, "kept")
    assert [k[:3] for k in kept] == [["2", "phone", "kept"], ["3", "phone", "kept"], ["3", "email", "kept"]]
    assert "opted out of texts, and stays opted out" in kept[0][3]
    assert "Blocked Communications list" in kept[1][3]


def test_the_same_file_imported_again_changes_nothing(practice, tmp_path):
    path = write(tmp_path, GOOD + ",Nia,NoId,,,,,,,,\n")
    run_import(practice, path)
    before = counts()
    out = run_import(practice, path)
    # The row without an external id is a new patient every time; the others are found by it.
    assert "4 rows: 1 created, 0 updated, 3 unchanged" in out
    assert counts()[3] == before[3]  # no ledger event
    assert Patient.objects.filter(external_id="").count() == 2
    assert Patient.objects.exclude(external_id="").count() == 3


def test_a_row_updates_its_patient_and_adds_addresses_without_taking_any_off(practice, tmp_path):
    ava = make_patient(practice, "Ava", phones=[("+14155550199", "mobile")], external_id="p-1")
    out = run_import(practice, write(tmp_path, GOOD))
    assert "3 rows: 2 created, 1 updated" in out
    ava.refresh_from_db()
    assert ava.last_name == "Rivera"
    assert set(ava.contact_points.values_list("address", flat=True)) == {
        "+14155550199",
        "+14155550111",
        "ava.rivera@example.com",
    }
    # The practice keeps contact preferences in Consentry (the default): a new preferred phone is
    # not taken from the file for an existing patient, and marketing consent stays unknown.
    assert ava.preferred_phone is None and ava.marketing_consent == "unknown"
    lines = report_lines(out, "kept")
    assert sorted((k[0], k[1]) for k in lines) == [("2", "marketing_consent"), ("2", "preferred")]
    assert all("Consentry" in k[3] for k in lines)


def test_a_sync_rule_keeps_what_staff_set_and_the_ehr_owned_setting_takes_the_file(practice, tmp_path):
    ben = make_patient(practice, "Ben", phones=[("+14155550111", "mobile")], external_id="p-2")
    update_patient(patient=ben, do_not_contact=True, source="staff", actor="staff:1")
    row = f"{HEADER}\np-2,Ben,Rivera,,,,,no,,,\n"
    out = run_import(practice, write(tmp_path, row))
    ben.refresh_from_db()
    assert ben.do_not_contact is True and ben.last_name == "Rivera"
    assert "1 updated" in out
    assert any(line.split()[:3] == ["2", "do_not_contact", "kept"] for line in out.splitlines()), out
    report = import_patients(practice, row.encode(), file_name="x.csv", actor="t", dry_run=True)
    assert [(k.row, k.column, k.reason) for k in report.kept] == [
        (2, "do_not_contact", "consentry_keeps_contact_preferences")
    ]
    practice.contact_preferences_source = "ehr"
    practice.save()
    run_import(practice, write(tmp_path, row))
    ben.refresh_from_db()
    assert ben.do_not_contact is False
    assert ConsentEvent.objects.filter(subject="do_not_contact").latest("seq").source == "import"


def test_headers_in_any_case_with_a_bom_semicolons_and_unknown_columns(practice, tmp_path):
    text = "\ufeffFirst Name;LAST-NAME;Phone;Date of birth\r\nAva;Rivera;4155550111;2001-02-03\r\n\r\n"
    out = run_import(practice, write(tmp_path, text))
    assert "1 row: 1 created" in out
    assert "unknown column 'Date of birth': ignored" in out
    ava = Patient.objects.get()
    assert (ava.first_name, ava.last_name, ava.external_id) == ("Ava", "Rivera", "")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"first_name\nJos\xe9\n", "not UTF-8 text (line 2)"),
        (b"", "the file is empty"),
        (b"name,phone\nAva,4155550111\n", "the header has no first_name column"),
        (b"first_name,first_name\nAva,Ava\n", "the column first_name is named twice"),
        (b"first_name\n", "no patient rows"),
        (b'first_name\n"Ava\n', "not CSV"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole(practice, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    out = io.StringIO()
    with pytest.raises(CommandError, match="cannot be read"):
        call_command("import", "patients", str(path), "--practice", str(practice.pk), stdout=out)
    assert message in out.getvalue()
    assert counts() == (0, 0, 0, 0)


def test_bad_arguments_are_errors_not_tracebacks(practice, tmp_path):
    with pytest.raises(CommandError, match="(?i)no such file"):
        call_command("import", "patients", str(tmp_path / "missing.csv"), "--practice", str(practice.pk))
    with pytest.raises(CommandError, match="no practice"):
        call_command("import", "patients", str(write(tmp_path, GOOD)), "--practice", "nowhere")
    with pytest.raises(CommandError, match="Is a directory"):
        call_command("import", "patients", str(tmp_path), "--practice", str(practice.pk))
    assert counts() == (0, 0, 0, 0)


def test_the_practice_is_found_by_its_texting_number_and_another_practice_is_untouched(practice, tmp_path):
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    make_patient(elm, "Ava", phones=[("+14155550111", "mobile")], external_id="p-1")
    consent.record_sms_opt_out(practice=elm, number="+14155550111", source=Source.SMS_KEYWORD, actor="x")
    call_command("import", "patients", str(write(tmp_path, GOOD)), "--practice", "(415) 555-0100", stdout=io.StringIO())
    assert Patient.objects.filter(practice=practice).count() == 3
    assert Patient.objects.filter(practice=elm).count() == 1
    # Consent belongs to (practice, address): Elm's opt-out is not Oak's, and nothing is kept for it.
    assert "+14155550111" not in ledger.consent_state(practice.pk, ["+14155550111"]).sms_opted_out


# --- the upload page --------------------------------------------------------------------------------------------------


@pytest.fixture
def admin(practice):
    return signed_in(make_staff(practice, email="ann@oak.example", role="admin", name="Ann Admin"))


def upload(text: str | bytes, name: str = "patients.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode() if isinstance(text, str) else text, content_type="text/csv")


def test_front_desk_cannot_open_or_post_to_the_import_page(practice):
    desk = signed_in(make_staff(practice))
    assert desk.get("/settings/import").status_code == 403
    answer = desk.post("/settings/import", {"action": "import", "file": upload(GOOD)})
    assert answer.status_code == 403
    assert counts()[0] == 0


def test_the_settings_page_links_to_the_import(admin):
    assert b'href="/settings/import"' in admin.get("/settings/").content
    page = admin.get("/settings/import")
    assert page.status_code == 200 and b"Check the file" in page.content


def test_an_admin_checks_a_file_then_confirms_it_and_reads_the_summary(practice, admin):
    checked = admin.post("/settings/import", {"action": "check", "file": upload(GOOD)})
    assert checked.status_code == 200
    assert b"nothing has changed yet" in checked.content and b"3 created" in checked.content
    assert counts() == (0, 0, 0, 0)
    digest = hashlib.sha256(GOOD.encode()).hexdigest()
    assert f'name="checked" value="{digest}"'.encode() in checked.content
    done = admin.post("/settings/import", {"action": "import", "checked": digest, "file": upload(GOOD)})
    assert done.status_code == 200 and b"Imported" in done.content
    assert Patient.objects.count() == 3
    staff_id = Membership.objects.get(practice=practice, role="admin").user_id
    assert set(ConsentEvent.objects.values_list("source", "actor")) == {("import", f"staff:{staff_id}")}


def test_confirming_with_another_file_checks_it_instead_of_importing_it(admin):
    digest = hashlib.sha256(GOOD.encode()).hexdigest()
    answer = admin.post("/settings/import", {"action": "import", "checked": digest, "file": upload(LEGACY)})
    assert answer.status_code == 200 and b"not the file that was checked" in answer.content
    assert counts() == (0, 0, 0, 0)


def test_the_page_refuses_an_invalid_file_unless_invalid_rows_are_skipped(admin):
    refused = admin.post("/settings/import", {"action": "check", "file": upload(BAD)})
    assert refused.status_code == 422
    assert b"not a phone number" in refused.content and b"Import this file" not in refused.content
    digest = hashlib.sha256(BAD.encode()).hexdigest()
    refused = admin.post("/settings/import", {"action": "import", "checked": digest, "file": upload(BAD)})
    assert refused.status_code == 422 and counts() == (0, 0, 0, 0)
    checked = admin.post("/settings/import", {"action": "check", "skip_invalid": "on", "file": upload(BAD)})
    assert checked.status_code == 200 and b"Import this file" in checked.content
    assert b'name="skip_invalid" value="on"' in checked.content
    done = admin.post(
        "/settings/import", {"action": "import", "checked": digest, "skip_invalid": "on", "file": upload(BAD)}
    )
    assert done.status_code == 200 and b"2 invalid skipped" in done.content
    assert Patient.objects.count() == 2


def test_an_upload_is_never_written_to_disk_and_a_large_one_is_refused(admin, settings, tmp_path):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10  # Django would spill anything larger to a temporary file
    answer = admin.post("/settings/import", {"action": "check", "file": upload(GOOD)})
    assert answer.status_code == 200 and b"3 created" in answer.content
    assert list(tmp_path.iterdir()) == []
    settings.MAX_REQUEST_BYTES = 200 * 1024
    big = GOOD + "".join(f"x-{i},Pat{i},Lee,,,,,,,,\n" for i in range(6000))
    answer = admin.post("/settings/import", {"action": "check", "file": upload(big)})
    assert answer.status_code == 413 and b"command line" in answer.content
    assert counts() == (0, 0, 0, 0)


def test_the_page_needs_a_file(admin):
    answer = admin.post("/settings/import", {"action": "check"})
    assert answer.status_code == 400 and b"This field is required" in answer.content


def test_the_documented_example_imports_as_the_documentation_says(practice):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "import.md").read_text()
    example = doc.split("```csv\n", 1)[1].split("```", 1)[0]
    report = import_patients(practice, example.encode(), file_name="example.csv", actor="t")
    assert (report.created, report.sms_opt_outs, report.email_unsubscribes, report.problems) == (5, 1, 1, [])
    shared = ContactPoint.objects.get(address="+14155550111")
    assert sorted(shared.patients.values_list("first_name", flat=True)) == ["Ava", "Ben"]
    again = import_patients(practice, example.encode(), file_name="example.csv", actor="t")
    assert (again.created, again.unchanged) == (1, 4)  # Eli, without an external id, is new every time


def test_the_practices_webhook_endpoints_hear_of_the_imported_opt_outs(practice, tmp_path):
    import json

    from consentry.events.endpoints import create_endpoint
    from consentry.events.models import WebhookDelivery

    create_endpoint(practice=practice, url="https://ehr.example.com/hooks", events=["consent.changed"])
    run_import(practice, write(tmp_path, LEGACY, name="old-system.csv"))
    sent = [json.loads(d.payload)["data"] for d in WebhookDelivery.objects.filter(type="consent.changed")]
    dee = Patient.objects.get(external_id="old-1")
    opt_out = next(d for d in sent if d["subject"] == "sms")
    assert (opt_out["address"], opt_out["state"], opt_out["source"]) == ("+14155550144", "opted_out", "import")
    assert opt_out["patient_ids"] == [str(dee.pk)]
    assert sorted(d["subject"] for d in sent) == ["email", "sms"]


def test_a_report_file_that_cannot_be_written_stops_the_import_before_it_starts(practice, tmp_path):
    with pytest.raises(CommandError, match="--report"):
        run_import(practice, write(tmp_path, GOOD), "--report", str(tmp_path / "no-such-dir" / "report.csv"))
    assert counts() == (0, 0, 0, 0)


def test_the_page_checks_its_csrf_token(practice):
    from django.test import Client

    user = make_staff(practice, email="ann@oak.example", role="admin", name="Ann Admin")
    client = signed_in(user, Client(enforce_csrf_checks=True))
    answer = client.post("/settings/import", {"action": "check", "file": upload(GOOD)})
    assert answer.status_code == 403 and b"CSRF" in answer.content
    token = client.get("/settings/import").cookies["csrftoken"].value
    answer = client.post("/settings/import", {"action": "check", "file": upload(GOOD), "csrfmiddlewaretoken": token})
    assert answer.status_code == 200 and b"3 created" in answer.content
