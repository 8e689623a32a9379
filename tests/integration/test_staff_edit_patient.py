"""Editing a patient in the staff app: addresses and line types, preferred phone, flags through the
ledger with the staff user as actor, notification choices; all or nothing."""

from __future__ import annotations

import re

import pytest

from consentry.consent import services as consent
from consentry.consent.models import ConsentEvent, Source
from consentry.patients.models import ContactPoint, Patient
from tests.conftest import make_patient, make_practice

pytestmark = pytest.mark.django_db


def form_of(page: str) -> dict:
    """The edit form as the browser would post it untouched: every input's and select's current value."""
    form: dict = {}
    for tag in re.findall(r"<input [^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or 'type="submit"' in tag:
            continue
        if 'type="checkbox"' in tag:
            if " checked" in tag:
                form[name.group(1)] = "on"
            continue
        value = re.search(r'value="([^"]*)"', tag)
        form[name.group(1)] = value.group(1) if value else ""
    for name, body in re.findall(r'<select [^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', body)
        form[name] = chosen.group(1) if chosen else re.search(r'<option value="([^"]*)"', body).group(1)
    return form


def test_saving_the_form_untouched_changes_nothing_and_records_nothing(practice, desk):
    patient = make_patient(
        practice, "Ava", last_name="Rivera", phones=[("+14155550111", "mobile")], emails=["ava@x.example"],
        preferred_phone="+14155550111", marketing_consent="yes",
    )  # fmt: skip
    events = ConsentEvent.objects.count()
    form = form_of(desk.get(f"/patients/{patient.pk}/edit").content.decode())
    assert desk.post(f"/patients/{patient.pk}/edit", form).status_code == 302
    patient.refresh_from_db()
    assert (patient.first_name, patient.last_name, patient.preferred_phone.address) == ("Ava", "Rivera", "+14155550111")
    assert patient.notification_overrides == {} and patient.channel_opt_outs == []
    assert ConsentEvent.objects.count() == events


def test_add_and_take_off_addresses_change_a_line_type_and_keep_the_ledger(practice, desk, user):
    patient = make_patient(practice, "Ava", phones=[("+14155550111", "mobile")], emails=["old@x.example"])
    consent.record_sms_opt_out(practice=practice, number="+14155550111", source=Source.SMS_KEYWORD, actor="x")
    form = form_of(desk.get(f"/patients/{patient.pk}/edit").content.decode())
    form["phone-0-remove"] = "on"  # take the opted-out phone off
    form["phone-1-number"] = "(415) 555-0122"
    form["phone-1-line_type"] = "landline"
    form["email-0-remove"] = "on"
    form["email-1-address"] = "New@X.example"
    form["preferred_phone"] = ""
    assert desk.post(f"/patients/{patient.pk}/edit", form).status_code == 302
    addresses = [link.contact_point.address for link in patient.contacts.order_by("position")]
    assert addresses == ["+14155550122", "new@x.example"]
    assert ContactPoint.objects.get(address="+14155550122").line_type == "landline"
    # The phone taken off keeps its contact point and its opt-out.
    assert ContactPoint.objects.filter(address="+14155550111").exists()
    assert ConsentEvent.objects.filter(address="+14155550111", state="opted_out").exists()
    page = desk.get(f"/patients/{patient.pk}/").content.decode()
    assert "+14155550111" not in page and 'title="Landline: calls only"' in page


def test_flags_go_through_the_ledger_with_the_staff_user_as_actor(practice, desk, user):
    patient = make_patient(practice, "Ava", phones=[("+14155550111", "mobile")])
    form = form_of(desk.get(f"/patients/{patient.pk}/edit").content.decode())
    form.update(do_not_contact="on", marketing_consent="no")
    assert desk.post(f"/patients/{patient.pk}/edit", form).status_code == 302
    patient.refresh_from_db()
    assert patient.do_not_contact is True and patient.marketing_consent == "no"
    events = ConsentEvent.objects.filter(subject__in=["do_not_contact", "marketing"], actor=f"staff:{user.pk}")
    assert {(e.subject, e.source) for e in events} == {("do_not_contact", "staff"), ("marketing", "staff")}


def test_notification_choices_are_stored_as_changes_from_the_practice_defaults(practice, desk):
    patient = make_patient(practice, "Ava", emails=["ava@x.example"])
    form = form_of(desk.get(f"/patients/{patient.pk}/edit").content.decode())
    assert form["notify:appointment_reminder:email"] == "on"  # the practice's default
    del form["notify:appointment_reminder:email"]
    form["notify:recall:email"] = "on"
    form["optout:voice"] = "on"
    assert desk.post(f"/patients/{patient.pk}/edit", form).status_code == 302
    patient.refresh_from_db()
    assert patient.notification_overrides == {"appointment_reminder": {"email": False}, "recall": {"email": True}}
    assert patient.channel_opt_outs == ["voice"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"first_name": ""}, "first name"),
        ({"phone-1-number": "not a phone"}, "not a phone number: &#x27;not a phone&#x27;"),
        ({"email-1-address": "nope"}, "not an email address: &#x27;nope&#x27;"),
        ({"preferred_phone": "+14155550199"}, "must be one of the patient"),
        ({"marketing_consent": "maybe"}, "yes, no or unknown"),
    ],
)
def test_bad_input_is_refused_with_the_field_and_nothing_changes(practice, desk, change, message):
    patient = make_patient(practice, "Ava", phones=[("+14155550111", "mobile")])
    form = form_of(desk.get(f"/patients/{patient.pk}/edit").content.decode())
    form.update(last_name="Changed", do_not_contact="on", **change)
    answer = desk.post(f"/patients/{patient.pk}/edit", form)
    assert answer.status_code == 400
    page = answer.content.decode()
    assert "Not saved" in page and message.replace("_", " ") in page.replace("_", " ")
    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.last_name, stored.do_not_contact) == ("", False)
    assert not ConsentEvent.objects.filter(subject="do_not_contact", state="true").exists()


def test_another_practices_patient_cannot_be_edited(practice, desk):
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    theirs = make_patient(elm, "Zed")
    assert desk.get(f"/patients/{theirs.pk}/edit").status_code == 404
    assert desk.post(f"/patients/{theirs.pk}/edit", {"first_name": "Owned"}).status_code == 404
    assert Patient.objects.get(pk=theirs.pk).first_name == "Zed"


def test_when_the_ehr_owns_contact_preferences_they_are_read_only_with_a_note(practice, desk):
    practice.contact_preferences_source = "ehr"
    practice.save()
    patient = make_patient(practice, "Ava", phones=[("+14155550111", "mobile")], marketing_consent="yes")
    page = desk.get(f"/patients/{patient.pk}/edit").content.decode()
    assert "Synced from the EHR" in page
    for control in ('id="preferred_phone"', 'id="do_not_contact"', 'id="marketing_consent"'):
        assert re.search(rf"{control}[^>]*disabled", page), control
    form = form_of(page)
    form.update(do_not_contact="on", marketing_consent="no", preferred_phone="+14155550111", last_name="Kept")
    assert desk.post(f"/patients/{patient.pk}/edit", form).status_code == 302
    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.do_not_contact, stored.marketing_consent, stored.preferred_phone_id) == (False, "yes", None)
    assert stored.last_name == "Kept"  # the rest of the form still saves
    assert not ConsentEvent.objects.filter(subject__in=["do_not_contact", "marketing"], source="staff").exists()


def test_labels_are_edited_as_a_comma_separated_list(practice, desk):
    patient = make_patient(practice, "Ava")
    form = form_of(desk.get(f"/patients/{patient.pk}/edit").content.decode())
    form["tags"] = "Diabetic,  new parent , diabetic"
    assert desk.post(f"/patients/{patient.pk}/edit", form).status_code == 302
    assert Patient.objects.get(pk=patient.pk).tags == ["diabetic", "new parent"]
    assert "diabetic, new parent" in desk.get(f"/patients/{patient.pk}/").content.decode()
