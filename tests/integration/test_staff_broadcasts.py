"""Broadcasts in the staff app: the recipient preview (the engine's plan, stored nowhere), the sample,
the send, the delivery report with skip reasons, the CSV export, lists of patients, isolation."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from consentry.consent import services as consent
from consentry.consent.models import EmailState, Source
from consentry.messaging.models import Delivery, Message
from tests.conftest import drain_worker, make_patient, make_practice, make_staff, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def families(practice):
    """A mobile, an opted-out phone with an email, a landline, an unsubscribed email alone."""
    ava = make_patient(practice, "Ava", last_name="Rivera", phones=[("+14155550111", "mobile")], external_id="E-1")
    ben = make_patient(practice, "Ben", phones=[("+14155550122", "mobile")], emails=["ben@x.example"])
    cy = make_patient(practice, "Cy", phones=[("+14155550133", "landline")])
    dee = make_patient(practice, "Dee", emails=["dee@x.example"])
    consent.record_sms_opt_out(practice=practice, number="+14155550122", source=Source.SMS_KEYWORD, actor="x")
    consent.record_email_state(
        practice=practice, email="dee@x.example", state=EmailState.UNSUBSCRIBED, source="one_click_unsubscribe",
        actor="dee@x.example",
    )  # fmt: skip
    return ava, ben, cy, dee


CONTENT = {
    "category": "announcement",
    "audience": "all",
    "sms": "Hi {{first_name}}, flu shots are in.",
    "voice": "Flu shots are in.",
    "email_subject": "Flu shots",
    "email_text": "Hi {{first_name}}, flu shots are in.",
}


def counts(page: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'<th scope="row">([^<]+)</th><td class="num">(\d+)</td>', page)}


def test_the_preview_counts_what_each_patient_would_get_and_stores_nothing(practice, desk, families):
    page = desk.post("/broadcasts/new", {**CONTENT, "action": "preview"}).content.decode()
    assert "<strong>4</strong> patients in the audience" in page
    shown = counts(page)
    # Ava is texted; Ben's phone opted out of texts, not calls, so Ben is called, as Cy's landline is.
    assert (shown["Text"], shown["Call"], shown["Email"]) == (1, 2, 0)
    assert shown["Skipped: email unsubscribed"] == 1  # Dee
    assert "As Ava Rivera would get it" in page or "would get it" in page
    assert "flu shots are in" in page and "{{first_name}}" not in page.split("would get it", 1)[1]
    assert "Send to 4 patients" in page
    assert not Message.objects.exists() and not Delivery.objects.exists()


def test_send_then_the_report_reaches_its_final_counts_with_skip_reasons(practice, desk, user, families):
    preview = desk.post("/broadcasts/new", {**CONTENT, "action": "preview"}).content.decode()
    key = re.search(r'name="send_key" value="([0-9a-f]+)"', preview).group(1)
    sent = desk.post("/broadcasts/new", {**CONTENT, "action": "send", "send_key": key})
    message = Message.objects.get()
    assert sent.status_code == 302 and sent["Location"] == f"/broadcasts/{message.pk}/"
    assert (message.kind, message.actor) == ("broadcast", f"staff:{user.pk}")
    # A second click on Send answers with the same broadcast.
    desk.post("/broadcasts/new", {**CONTENT, "action": "send", "send_key": key})
    assert Message.objects.count() == 1
    pending = desk.get(f"/broadcasts/{message.pk}/").content.decode()
    assert "still to go" in pending and 'hx-trigger="every 3s"' in pending
    drain_worker()
    report = desk.get(f"/broadcasts/{message.pk}/").content.decode()
    assert "Finished: every one of the 8 deliveries" in report and "every 3s" not in report  # skips count too
    assert "by Dana Desk (staff)" in report
    shown = counts(report)
    assert shown["email unsubscribed"] == 1
    assert Delivery.objects.filter(message=message, status="delivered").count() == 3
    only_skipped = desk.get(f"/broadcasts/{message.pk}/", {"reason": "email_unsubscribed"}).content.decode()
    assert ">Dee </a>" in only_skipped and ">Ava Rivera</a>" not in only_skipped
    listed = desk.get("/broadcasts/").content.decode()
    assert f'href="/broadcasts/{message.pk}/"' in listed


def test_the_live_counts_refresh_as_a_fragment(practice, desk, families):
    preview = desk.post("/broadcasts/new", {**CONTENT, "action": "preview"}).content.decode()
    key = re.search(r'name="send_key" value="([0-9a-f]+)"', preview).group(1)
    desk.post("/broadcasts/new", {**CONTENT, "action": "send", "send_key": key})
    message = Message.objects.get()
    part = desk.get(f"/broadcasts/{message.pk}/", HTTP_HX_REQUEST="true", HTTP_X_CONSENTRY_REFRESH="1")
    assert part.content.decode().startswith('\n<div id="report-counts"') and b"<html" not in part.content


def test_the_export_lists_every_delivery_and_defuses_formulas(practice, desk):
    make_patient(practice, '=HYPERLINK("http://x")', emails=["eve@x.example"])
    preview = desk.post("/broadcasts/new", {**CONTENT, "action": "preview"}).content.decode()
    key = re.search(r'name="send_key" value="([0-9a-f]+)"', preview).group(1)
    desk.post("/broadcasts/new", {**CONTENT, "action": "send", "send_key": key})
    message = Message.objects.get()
    answer = desk.get(f"/broadcasts/{message.pk}/deliveries.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(answer.streaming_content).decode())))
    # No phone: the text and the call are skipped with their reason, the email goes.
    assert [(r["channel"], r["address"], r["status"]) for r in rows] == [
        ("sms", "", "skipped"),
        ("voice", "", "skipped"),
        ("email", "eve@x.example", "pending"),
    ]
    assert all(r["reason"] for r in rows[:2])
    assert {r["first_name"] for r in rows} == {'\'=HYPERLINK("http://x")'}


def test_a_list_of_external_ids_phones_and_emails_picks_the_audience(practice, desk, families):
    form = {
        **CONTENT,
        "audience": "list",
        "patient_list": "E-1\n(415) 555-0133\nnobody@x.example\nE-404",
        "action": "preview",
    }
    page = desk.post("/broadcasts/new", form).content.decode()
    assert "<strong>2</strong> patients in the audience" in page
    assert "2 lines of the list named no patient: nobody@x.example, E-404" in page
    upload = SimpleUploadedFile("list.csv", b"external_id,name\nE-1,Ava\n", content_type="text/csv")
    page = desk.post("/broadcasts/new", {**form, "patient_list": "", "list_file": upload}).content.decode()
    assert "<strong>1</strong> patient in the audience" in page


@pytest.mark.parametrize(
    "change, message",
    [
        ({"audience": "list", "patient_list": "nobody"}, "names no patient"),
        ({"sms": "Hi {{ssn}}", "voice": "", "email_subject": "", "email_text": ""}, "unknown token"),
        ({"sms": "", "voice": "", "email_subject": "", "email_text": ""}, "no content"),
        ({"category": "gossip"}, "Select a valid choice"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_sent(practice, desk, families, change, message):
    for action in ("preview", "send"):
        page = desk.post("/broadcasts/new", {**CONTENT, **change, "action": action, "send_key": "k"})
        assert page.status_code == 400
        assert message in page.content.decode()
    assert not Message.objects.exists()


def test_another_practices_broadcast_is_a_404(practice, desk):
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    make_patient(elm, "Zed", emails=["zed@x.example"])
    elm_user = make_staff(elm, email="zed@elm.example")
    other = signed_in(elm_user)
    preview = other.post("/broadcasts/new", {**CONTENT, "action": "preview"}).content.decode()
    key = re.search(r'name="send_key" value="([0-9a-f]+)"', preview).group(1)
    other.post("/broadcasts/new", {**CONTENT, "action": "send", "send_key": key})
    theirs = Message.objects.get()
    assert desk.get(f"/broadcasts/{theirs.pk}/").status_code == 404
    assert desk.get(f"/broadcasts/{theirs.pk}/deliveries.csv").status_code == 404
    assert str(theirs.pk) not in desk.get("/broadcasts/").content.decode()


def test_content_and_list_lines_render_escaped(practice, desk, families):
    payload = "<script>alert(1)</script>"
    form = {
        **CONTENT,
        "sms": f"Hi {payload}",
        "audience": "list",
        "patient_list": f"E-1\n{payload}",
        "action": "preview",
    }
    page = desk.post("/broadcasts/new", form).content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_an_audience_by_label_and_last_visit(practice, desk):
    from datetime import date

    make_patient(practice, "Ann", emails=["ann@x.example"], tags=["diabetic"], last_visit_on=date(2026, 3, 1))
    make_patient(practice, "Bob", emails=["bob@x.example"], tags=["diabetic"], last_visit_on=date(2025, 1, 1))
    make_patient(practice, "Cid", emails=["cid@x.example"], tags=["asthma"], last_visit_on=date(2026, 3, 1))
    make_patient(practice, "Dot", emails=["dot@x.example"])
    form = {**CONTENT, "audience": "filter", "action": "preview"}
    page = desk.post("/broadcasts/new", {**form, "tag": "diabetic"}).content.decode()
    assert "<strong>2</strong> patients in the audience" in page
    assert '<option value="asthma">' in page  # the practice's labels to choose from
    page = desk.post("/broadcasts/new", {**form, "tag": "diabetic", "visited_after": "2026-01-01"}).content.decode()
    assert "<strong>1</strong> patient in the audience" in page and "As Ann" in page
    page = desk.post("/broadcasts/new", {**form, "visited_before": "2026-01-01"}).content.decode()
    assert "<strong>1</strong> patient in the audience" in page and "As Bob" in page
    nobody = desk.post("/broadcasts/new", {**form, "tag": "asthma", "visited_before": "2020-01-01"})
    assert nobody.status_code == 400 and "no patient has that label" in nobody.content.decode()


def test_all_patients_of_a_practice_with_none_yet_is_refused_and_nothing_is_sent(practice, desk):
    response = desk.post("/broadcasts/new", {**CONTENT, "action": "preview"})
    assert response.status_code == 400
    assert "the practice has no patients yet" in response.content.decode()
    assert not Message.objects.exists()


def test_all_patients_means_this_practices_patients_only(practice, desk, families):
    other, _ = make_practice("Elm Clinic", "+14155550200")
    make_patient(other, "Zed", phones=[("+14155550199", "mobile")])
    page = desk.post("/broadcasts/new", {**CONTENT, "action": "preview"}).content.decode()
    assert "<strong>4</strong> patients in the audience" in page
    key = re.search(r'name="send_key" value="([0-9a-f]+)"', page).group(1)
    desk.post("/broadcasts/new", {**CONTENT, "action": "send", "send_key": key})
    message = Message.objects.get()
    assert not Delivery.objects.filter(message=message, patient__practice=other).exists()
    assert set(Delivery.objects.filter(message=message).values_list("patient__first_name", flat=True)) == {
        "Ava",
        "Ben",
        "Cy",
        "Dee",
    }
