"""The recall list of the staff app: who is due (default: recalls due in the next 30 days), their
phones with their icons, the ways a recall can go with the text option greyed out and the reason
on hover where the engine would refuse it, and Send recall: an automation planned by the engine,
then what became of it (planned, sent, skipped by reason)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from consentry.consent import services as consent
from consentry.consent.models import Source
from consentry.messaging.models import Delivery, Message
from consentry.messaging.planning import create_message
from consentry.providers.models import SandboxMessage
from consentry.records.dues import set_due
from tests.conftest import drain_worker, make_patient, make_practice, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def practice():
    practice = make_practice()[0]
    practice.contact_phone = "+14155550199"
    practice.save(update_fields=["contact_phone"])
    return practice


def today(practice) -> date:
    return datetime.now(ZoneInfo(practice.timezone)).date()


def due_patient(practice, first_name, phones=(), days=7, category="recall", **kwargs):
    patient = make_patient(practice, first_name, last_name=kwargs.pop("last_name", "Doe"), phones=phones, **kwargs)
    set_due(patient=patient, category=category, due_on=today(practice) + timedelta(days=days))
    return patient


def rows(page: str) -> dict[str, str]:
    """Each row of the recall list by the patient's name as shown."""
    found = re.findall(r'<tr>\s*<td><input type="checkbox" name="patient".*?</tr>', page, re.S)
    return {unescape(re.search(r'<a href="/patients/[^"]+/">([^<]+)</a>', row).group(1)): row for row in found}


def way(row: str, name: str) -> tuple[bool, str]:
    """(open, the reason on hover when it is not) of one way a recall can go, in one row."""
    li = re.search(rf'<li class="way way-[a-z]+( way-off)?" title="([^"]*)">{name}<', row)
    assert li, f"no {name} option"
    return li.group(1) is None, "" if li.group(1) is None else unescape(li.group(2))


def test_the_page_needs_a_signed_in_user(practice):
    answer = Client().get("/recalls/")
    assert answer.status_code == 302 and answer["Location"].startswith("/account/sign-in?next=/recalls/")


def test_lists_recalls_due_in_the_next_30_days_by_default_overdue_ones_first(practice, desk):
    due_patient(practice, "Soon", days=10)
    due_patient(practice, "Overdue", days=-20)
    due_patient(practice, "Later", days=40)
    due_patient(practice, "Survey", days=5, category="survey")
    page = desk.get("/recalls/").content.decode()
    assert list(rows(page)) == ["Doe, Overdue", "Doe, Soon"]
    assert "overdue" in rows(page)["Doe, Overdue"] and "overdue" not in rows(page)["Doe, Soon"]
    horizon = today(practice) + timedelta(days=30)
    assert f'name="due_before" value="{horizon.isoformat()}"' in page
    assert re.search(r'<option value="recall" selected>Recall</option>', page)
    assert 'aria-current="page">Recalls' in page
    later = desk.get("/recalls/", {"due_before": (horizon + timedelta(days=30)).isoformat()}).content.decode()
    assert list(rows(later)) == ["Doe, Overdue", "Doe, Soon", "Doe, Later"]
    assert list(rows(desk.get("/recalls/", {"category": "survey"}).content.decode())) == ["Doe, Survey"]
    none = desk.get("/recalls/", {"due_before": today(practice).isoformat(), "category": "survey"})
    assert "No patient is due for survey before" in none.content.decode()


def test_a_bad_date_or_category_is_an_error_not_a_list(practice, desk):
    due_patient(practice, "Ava")
    bad_date = desk.get("/recalls/", {"due_before": "next week"})
    assert bad_date.status_code == 422 and "Due before: enter the date as YYYY-MM-DD." in bad_date.content.decode()
    bad_category = desk.get("/recalls/", {"category": "nope"})
    assert bad_category.status_code == 422 and "Category: unknown category" in bad_category.content.decode()
    assert not rows(bad_category.content.decode())


def test_the_text_option_is_greyed_out_with_the_reason_wherever_the_engine_would_refuse_it(practice, desk):
    blocked = due_patient(practice, "Blocked", phones=[("+14155550111", "mobile")], emails=["b@x.example"])
    opted = due_patient(practice, "Opted", phones=[("+14155550122", "mobile")])
    due_patient(practice, "Landline", phones=[("+14155550133", "landline")])
    due_patient(practice, "Invalid", phones=[("+14151234567", "mobile")])
    due_patient(practice, "Fine", phones=[("+14155550155", "mobile")])
    due_patient(practice, "Survey", phones=[("+14155550166", "mobile")])
    due_patient(practice, "Dnc", phones=[("+14155550177", "mobile")], do_not_contact=True)
    consent.set_block(practice=practice, number="+14155550111", categories=["recall"], source=Source.STAFF, actor="t")
    consent.set_block(practice=practice, number="+14155550166", categories=["survey"], source=Source.STAFF, actor="t")
    consent.record_sms_opt_out(practice=practice, number="+14155550122", source=Source.SMS_KEYWORD, actor="x")
    listed = rows(desk.get("/recalls/").content.decode())
    assert way(listed["Doe, Blocked"], "Text") == (
        False,
        "Number blocked for recall on the Blocked Communications list",
    )
    assert way(listed["Doe, Blocked"], "Call")[0] is False  # a block stops calls too
    assert way(listed["Doe, Blocked"], "Email") == (True, "")  # so the recall goes by email
    assert way(listed["Doe, Opted"], "Text") == (
        False,
        "Opted out of texts: only the patient can opt back in, by texting START",
    )
    assert way(listed["Doe, Opted"], "Call") == (True, "")
    assert way(listed["Doe, Landline"], "Text") == (False, "Landline: it takes calls, not texts")
    assert way(listed["Doe, Invalid"], "Text") == (False, "Not a valid phone number")
    assert way(listed["Doe, Fine"], "Text") == (True, "")
    assert way(listed["Doe, Fine"], "Email") == (False, "No email address on record")
    assert way(listed["Doe, Survey"], "Text") == (True, "")  # blocked for surveys, not recalls
    assert way(listed["Doe, Dnc"], "Text") == (False, "Do not contact: no automation reaches this patient")
    # Screen readers hear it too.
    assert 'Text<span class="sr-only"> not possible: Number blocked for recall' in listed["Doe, Blocked"]
    # The phones carry the patient list's icons, the reason on hover.
    assert 'title="Blocked for recall" role="img" aria-label="Blocked for recall"' in listed["Doe, Blocked"]
    assert 'title="Opted out of texts"' in listed["Doe, Opted"]
    assert 'title="Landline: calls only"' in listed["Doe, Landline"]
    assert 'title="Not a valid number"' in listed["Doe, Invalid"]
    assert f'href="/patients/{blocked.pk}/"' in listed["Doe, Blocked"] and str(opted.pk) in listed["Doe, Opted"]


def test_send_recall_plans_an_automation_by_the_staff_user_and_shows_what_became_of_it(practice, desk, user):
    fine = due_patient(practice, "Ava", last_name="Rivera", phones=[("+14155550155", "mobile")])
    blocked = due_patient(practice, "Ben", phones=[("+14155550111", "mobile")], emails=["ben@x.example"])
    landline = due_patient(practice, "Cy", phones=[("+14155550133", "landline")])
    nobody = due_patient(practice, "Dee", phones=[("+14155550144", "mobile")])
    not_chosen = due_patient(practice, "Eve", phones=[("+14155550166", "mobile")])
    consent.set_block(practice=practice, number="+14155550111", categories=["recall"], source=Source.STAFF, actor="t")
    consent.set_block(practice=practice, number="+14155550144", categories=["recall"], source=Source.STAFF, actor="t")
    page = desk.get("/recalls/").content.decode()
    text = unescape(re.search(r'<textarea id="recall-text" name="text"[^>]*>([^<]*)</textarea>', page).group(1))
    assert "{{first_name}}" in text and "{{practice_name}}" in text and "{{practice_phone}}" in text
    answer = desk.post(
        "/recalls/send",
        {
            "category": "recall",
            "patient": [str(p.pk) for p in (fine, blocked, landline, nobody)],
            "send_by": ["sms", "voice", "email"],
            "text": text,
        },
    )
    message = Message.objects.get()
    assert answer.status_code == 302 and answer["Location"] == f"/recalls/sent/{message.pk}/"
    assert (message.kind, message.category, message.actor) == ("automation", "recall", f"staff:{user.pk}")
    plan = {(d.patient.first_name, d.channel): (d.status, d.reason) for d in Delivery.objects.select_related("patient")}
    assert plan == {
        ("Ava", "sms"): ("pending", ""),
        ("Ben", "sms"): ("skipped", "blocked_for_category"),
        ("Ben", "voice"): ("skipped", "blocked_for_category"),
        ("Ben", "email"): ("pending", ""),
        ("Cy", "sms"): ("skipped", "no_text_capable_phone"),
        ("Cy", "voice"): ("pending", ""),
        ("Dee", "sms"): ("skipped", "blocked_for_category"),
        ("Dee", "voice"): ("skipped", "blocked_for_category"),
        ("Dee", "email"): ("skipped", "no_reachable_channel"),
    }
    assert not Delivery.objects.filter(patient=not_chosen).exists()
    before = desk.get(answer["Location"]).content.decode()
    assert fact(before, "Deliveries planned") == "3" and fact(before, "Sent") == "0"
    assert fact(before, "Waiting to go") == "3" and 'hx-trigger="every 2s"' in before
    drain_worker()
    after = desk.get(answer["Location"]).content.decode()
    assert [fact(after, k) for k in ("Patients", "Reached", "Deliveries planned", "Sent", "Skipped")] == [
        "4",
        "3",
        "3",
        "3",
        "6",
    ]
    assert 'hx-trigger="every 2s"' not in after
    skipped = dict(
        ((way_, unescape(why)), int(n))
        for way_, why, n in re.findall(r"<tr><td>(\w+)</td><td>([^<]+)</td><td class=\"num\">(\d+)</td></tr>", after)
    )
    assert skipped == {
        ("Text", "Number blocked for recall on the Blocked Communications list"): 2,
        ("Call", "Number blocked for recall on the Blocked Communications list"): 2,
        ("Text", "Landline: it takes calls, not texts"): 1,
        ("Email", "No email address on record"): 1,
    }
    [sms] = SandboxMessage.objects.filter(to="+14155550155")
    assert sms.body == (
        "Oak Clinic: Hi Ava, it is time for your next visit at Oak Clinic. Please call us on +14155550199 to book. "
        "Reply STOP to opt out."
    )
    assert not SandboxMessage.objects.filter(to__in=["+14155550111", "+14155550144"]).exists()
    [mail] = SandboxMessage.objects.filter(to="ben@x.example")
    assert "Time to book your next visit at Oak Clinic" in mail.subject and "Hi Ben" in mail.body


def fact(page: str, name: str) -> str:
    return re.search(rf"<dt>{name}</dt><dd>([^<]*)</dd>", page).group(1)


def test_the_outcome_refreshes_itself_with_htmx(practice, desk):
    ava = due_patient(practice, "Ava", phones=[("+14155550155", "mobile")])
    desk.post("/recalls/send", {"patient": [str(ava.pk)], "send_by": ["sms"], "text": "Hi"})
    url = f"/recalls/sent/{Message.objects.get().pk}/"
    part = desk.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert part.startswith('<div id="recall-outcome"') and "<html" not in part
    assert f'hx-get="{url}"' in part


def test_a_refused_send_says_why_keeps_the_selection_and_sends_nothing(practice, desk):
    ava = due_patient(practice, "Ava", phones=[("+14155550155", "mobile")])
    ben = due_patient(practice, "Ben", phones=[("+14155550166", "mobile")])
    for form, error in [
        ({"send_by": ["sms"], "text": "Hi"}, "Patients: select at least one patient."),
        ({"patient": [str(ava.pk)], "text": "Hi"}, "Send by: choose at least one way to send it."),
        ({"patient": [str(ava.pk)], "send_by": ["sms"], "text": "  "}, "Text of the recall: write the text"),
        ({"patient": [str(ava.pk)], "send_by": ["sms"], "text": "Hi {{ssn}}"}, "Text of the recall: unknown token"),
        ({"patient": [str(ava.pk)], "send_by": ["sms"], "text": "Hi", "category": "nope"}, "Category: unknown"),
        ({"patient": ["not-a-uuid"], "send_by": ["sms"], "text": "Hi"}, "Patients: 1 unknown patient"),
    ]:
        answer = desk.post("/recalls/send", {"category": "recall", **form})
        page = unescape(answer.content.decode())
        assert answer.status_code == 422 and error in page, (form, page[page.find('role="alert"') :][:300])
    page = desk.post(
        "/recalls/send", {"patient": [str(ava.pk)], "send_by": ["email"], "text": "Hi {{ssn}}"}
    ).content.decode()
    listed = rows(page)
    assert (
        " checked>" in listed["Doe, Ava"].split("</td>")[0] and " checked>" not in listed["Doe, Ben"].split("</td>")[0]
    )
    assert "Hi {{ssn}}</textarea>" in page
    assert re.search(r'value="email" checked', page) and not re.search(r'value="sms" checked', page)
    assert not Message.objects.exists() and not Delivery.objects.exists()
    assert ben  # listed, not chosen


def test_the_page_agrees_with_the_engine_for_every_patient(practice, desk):
    """For each patient, the text option is open exactly when a recall's text is then planned."""
    numbers = ["+14155550111", "+14155550122", "+14155550133", "+14151234567", "+14155550155", "+14155550166"]
    for i, n in enumerate(numbers):
        due_patient(practice, f"P{i}", phones=[(n, "landline" if i == 2 else "mobile")])
    due_patient(
        practice, "Pref", phones=[("+14155550177", "mobile"), ("+14155550188", "landline")],
        preferred_phone="+14155550188",
    )  # fmt: skip
    consent.set_block(practice=practice, number=numbers[0], categories=["recall"], source=Source.STAFF, actor="t")
    consent.record_sms_opt_out(practice=practice, number=numbers[1], source=Source.SMS_KEYWORD, actor="x")
    consent.set_block(practice=practice, number=numbers[5], categories=["survey"], source=Source.STAFF, actor="t")
    listed = rows(desk.get("/recalls/").content.decode())
    says = {name.removeprefix("Doe, "): way(row, "Text")[0] for name, row in listed.items()}
    ids = re.findall(r'name="patient" value="([0-9a-f-]+)"', "".join(listed.values()))
    planned = create_message(
        practice=practice, kind="automation", category="recall", patient_ids=ids, content={"sms": "Visit us"}
    )
    names = {
        str(pk): name for pk, name in Message.objects.get().deliveries.values_list("patient_id", "patient__first_name")
    }
    does = {names[d.patient_id]: d.status == "pending" for d in planned.deliveries}
    assert says == does
    assert says == {"P0": False, "P1": False, "P2": False, "P3": False, "P4": True, "P5": True, "Pref": False}


def test_another_practices_patients_are_never_listed_sent_to_or_shown(practice, desk):
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    theirs = due_patient(elm, "Zed", phones=[("+14155550111", "mobile")])
    assert "Zed" not in desk.get("/recalls/").content.decode()
    answer = desk.post("/recalls/send", {"patient": [str(theirs.pk)], "send_by": ["sms"], "text": "Hi"})
    assert answer.status_code == 422 and "1 unknown patient" in answer.content.decode()
    assert not Message.objects.exists()
    message = create_message(
        practice=elm, kind="automation", category="recall", patient_ids=[theirs.pk], content={"sms": "Hi"}
    ).message
    assert desk.get(f"/recalls/sent/{message.pk}/").status_code == 404
    assert desk.get("/recalls/sent/not-a-uuid/").status_code == 404


def test_a_staff_text_is_not_a_recall_outcome(practice, desk):
    ava = make_patient(practice, "Ava", phones=[("+14155550155", "mobile")])
    manual = create_message(
        practice=practice, kind="manual", category="recall", patient_ids=[ava.pk], content={"sms": "Hi"}
    ).message
    assert desk.get(f"/recalls/sent/{manual.pk}/").status_code == 404


def test_every_form_needs_the_csrf_token(practice, user):
    ava = due_patient(practice, "Ava", phones=[("+14155550155", "mobile")])
    strict = signed_in(user, Client(enforce_csrf_checks=True))
    assert strict.post("/recalls/send", {"patient": [str(ava.pk)], "send_by": ["sms"], "text": "Hi"}).status_code == 403
    assert not Message.objects.exists()
    assert 'name="csrfmiddlewaretoken"' in strict.get("/recalls/").content.decode().split('action="/recalls/send"')[1]


def test_names_render_escaped(practice, desk):
    payload = "<script>alert(1)</script>"
    patient = due_patient(practice, payload, last_name=payload, phones=[("+14155550155", "mobile")])
    page = desk.get("/recalls/").content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    refused = desk.post("/recalls/send", {"patient": [str(patient.pk)], "send_by": ["sms"], "text": "Hi {{x}}"})
    assert "<script>alert(1)" not in refused.content.decode()


def test_the_same_form_sent_twice_plans_one_recall(practice, desk):
    ava = due_patient(practice, "Ava", phones=[("+14155550155", "mobile")])
    page = desk.get("/recalls/").content.decode()
    key = re.search(r'name="send_key" value="([0-9a-f]{32})"', page).group(1)
    form = {"send_key": key, "patient": [str(ava.pk)], "send_by": ["sms"], "text": "Hi"}
    first, second = desk.post("/recalls/send", form), desk.post("/recalls/send", form)
    assert first["Location"] == second["Location"]
    assert Message.objects.count() == 1 and Delivery.objects.count() == 1
    # The same form changed after it was sent is no second recall either: it says so.
    changed = desk.post("/recalls/send", {**form, "text": "Hello"})
    assert changed.status_code == 422 and "this form was sent already" in changed.content.decode()
    assert Message.objects.count() == 1
    fresh = re.search(r'name="send_key" value="([0-9a-f]{32})"', changed.content.decode()).group(1)
    assert fresh != key
    assert desk.post("/recalls/send", {**form, "send_key": fresh, "text": "Hello"}).status_code == 302
    assert Message.objects.count() == 2
    # Each page load is a new form.
    assert key not in desk.get("/recalls/").content.decode()


def test_the_list_pages_a_hundred_at_a_time(practice, desk):
    for i in range(101):
        due_patient(practice, f"P{i:03d}", days=i % 10)
    first = desk.get("/recalls/").content.decode()
    assert len(rows(first)) == 100 and "Next page" in first and "Previous page" not in first
    href = unescape(re.search(r'<a href="\?([^"]+)">Next page</a>', first).group(1))
    second = desk.get(f"/recalls/?{href}").content.decode()
    assert len(rows(second)) == 1 and "Previous page" in second and ", page 2" in second
    assert set(rows(first)).isdisjoint(rows(second))
