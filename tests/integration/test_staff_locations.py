"""Locations in the staff app: a section of Settings for admins, and a Location select in the patient
edit form, shown only when the practice has locations."""

from __future__ import annotations

import pytest

from consentry.patients.locations import create_location
from consentry.patients.models import Location
from tests.conftest import make_patient, make_practice, make_staff, signed_in
from tests.integration.test_staff_edit_patient import form_of

pytestmark = pytest.mark.django_db

NORTH = "+14155550142"


@pytest.fixture
def admin(practice):
    return signed_in(make_staff(practice, email="ann@oak.example", role="admin", name="Ann Admin"))


def _add(client, **fields):
    form = {"name": "North", "texting_number": "(415) 555-0142", "timezone": "", "twilio_messaging_service_sid": ""}
    return client.post("/settings/locations/add", {**form, **fields})


def test_settings_link_to_the_locations_and_admins_add_one(practice, admin):
    assert 'href="/settings/locations/"' in admin.get("/settings/").content.decode()
    page = admin.get("/settings/locations/")
    assert page.status_code == 200 and "No locations" in page.content.decode()
    answer = _add(admin, timezone="America/Denver")
    assert answer.status_code == 302 and answer["Location"] == "/settings/locations/"
    location = Location.objects.get(practice=practice)
    assert (location.name, location.texting_number, location.timezone) == ("North", NORTH, "America/Denver")
    listed = admin.get("/settings/locations/").content.decode()
    assert "North" in listed and NORTH in listed and "America/Denver" in listed


def test_front_desk_staff_cannot_see_or_change_locations(practice, desk):
    location = create_location(practice=practice, name="North", texting_number=NORTH)
    assert desk.get("/settings/locations/").status_code == 403
    assert _add(desk, name="South", texting_number="+14155550143").status_code == 403
    assert desk.post(f"/settings/locations/{location.pk}/", {"name": "Mine"}).status_code == 403
    assert desk.post(f"/settings/locations/{location.pk}/delete").status_code == 403
    assert list(Location.objects.values_list("name", flat=True)) == ["North"]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"texting_number": "+14155550100"}, "already belongs to a practice or a location"),  # the practice's own
        ({"texting_number": "+14155550101"}, "already belongs to a practice or a location"),  # another practice's
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"twilio_messaging_service_sid": "MG1"}, "Messaging Service SID"),
        ({"name": ""}, "required"),
    ],
)
def test_a_bad_location_is_refused_on_the_form_and_creates_nothing(practice, admin, fields, message):
    make_practice(name="Elm Clinic", number="+14155550101")
    answer = _add(admin, **fields)
    assert answer.status_code == 400
    assert message in answer.content.decode()
    assert not Location.objects.exists()


def test_admins_change_and_delete_a_location_and_its_patients_stay(practice, admin):
    location = create_location(practice=practice, name="North", texting_number=NORTH)
    patient = make_patient(practice, phones=[("+14155550111", "mobile")], location_id=str(location.pk))
    page = admin.get(f"/settings/locations/{location.pk}/").content.decode()
    assert 'value="North"' in page and "Its 1 patient stays" in page
    form = {"name": "North Side", "texting_number": NORTH, "timezone": "America/Chicago"}
    assert admin.post(f"/settings/locations/{location.pk}/", form).status_code == 302
    location.refresh_from_db()
    assert (location.name, location.timezone) == ("North Side", "America/Chicago")
    taken = admin.post(
        f"/settings/locations/{location.pk}/", {**form, "name": "Renamed", "texting_number": "+14155550100"}
    )
    assert taken.status_code == 400 and "already belongs" in taken.content.decode()
    location.refresh_from_db()
    assert location.name == "North Side"
    assert admin.post(f"/settings/locations/{location.pk}/delete").status_code == 302
    assert not Location.objects.exists()
    patient.refresh_from_db()
    assert patient.location_id is None


def test_another_practices_location_is_a_404(practice, admin):
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    theirs = create_location(practice=elm, name="Elm North", texting_number=NORTH)
    assert admin.get(f"/settings/locations/{theirs.pk}/").status_code == 404
    assert admin.post(f"/settings/locations/{theirs.pk}/", {"name": "Mine", "texting_number": NORTH}).status_code == 404
    assert admin.post(f"/settings/locations/{theirs.pk}/delete").status_code == 404
    assert "Elm North" not in admin.get("/settings/locations/").content.decode()
    assert Location.objects.get(pk=theirs.pk).name == "Elm North"


def test_the_patient_form_has_no_location_select_when_the_practice_has_no_locations(practice, desk):
    patient = make_patient(practice, phones=[("+14155550111", "mobile")])
    page = desk.get(f"/patients/{patient.pk}/edit").content.decode()
    assert 'name="location"' not in page
    assert desk.post(f"/patients/{patient.pk}/edit", form_of(page)).status_code == 302


def test_staff_put_a_patient_at_a_location_and_take_them_off(practice, desk):
    north = create_location(practice=practice, name="North", texting_number=NORTH)
    south = create_location(practice=practice, name="South", texting_number="+14155550143")
    patient = make_patient(practice, phones=[("+14155550111", "mobile")], location_id=str(north.pk))
    page = desk.get(f"/patients/{patient.pk}/edit").content.decode()
    form = form_of(page)
    assert form["location"] == str(north.pk) and "South (+14155550143)" in page
    form["location"] = str(south.pk)
    assert desk.post(f"/patients/{patient.pk}/edit", form).status_code == 302
    patient.refresh_from_db()
    assert patient.location_id == south.pk
    form["location"] = ""
    assert desk.post(f"/patients/{patient.pk}/edit", form).status_code == 302
    patient.refresh_from_db()
    assert patient.location_id is None


def test_a_location_of_another_practice_is_refused_in_the_patient_form(practice, desk):
    create_location(practice=practice, name="North", texting_number=NORTH)
    theirs = create_location(
        practice=make_practice(name="Elm Clinic", number="+14155550101")[0], name="Elm", texting_number="+14155550144"
    )
    patient = make_patient(practice, "Ava", phones=[("+14155550111", "mobile")])
    form = form_of(desk.get(f"/patients/{patient.pk}/edit").content.decode())
    form.update(location=str(theirs.pk), first_name="Avery")
    answer = desk.post(f"/patients/{patient.pk}/edit", form)
    assert answer.status_code == 400 and "no such location" in answer.content.decode()
    patient.refresh_from_db()
    assert (patient.first_name, patient.location_id) == ("Ava", None)
