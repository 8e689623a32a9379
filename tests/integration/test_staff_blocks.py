"""The Blocked Communications page: numbers blocked per category (recalls first), added in any
format, ticked and unticked (plain form posts and htmx), each change a ledger event by the staff
user; bad input refused with nothing changed; other practices' numbers never shown; escaping."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from consentry.consent import services as consent
from consentry.consent.models import Block, ConsentEvent, Source, Subject
from consentry.messaging.planning import create_message
from tests.conftest import make_patient, make_practice, make_staff, signed_in

pytestmark = pytest.mark.django_db

NUMBER = "+14155550111"


def blocks(practice) -> dict[str, list[str]]:
    return dict(Block.objects.filter(practice=practice).values_list("number", "categories"))


def block_events(practice) -> list[tuple[str, str, str, str]]:
    return list(
        ConsentEvent.objects.filter(practice=practice, subject=Subject.BLOCK)
        .order_by("seq")
        .values_list("address", "state", "source", "actor")
    )


def row_of(page: str, number: str) -> str:
    found = re.search(rf"<tr>\s*<th scope=\"row\" class=\"nowrap\">{re.escape(number)}</th>(.*?)</tr>", page, re.S)
    assert found, f"{number} is not listed"
    return found.group(1)


def ticked(row: str) -> list[str]:
    return re.findall(r'name="categories" value="([a-z_]+)" checked', row)


def test_the_page_needs_a_signed_in_user(practice):
    answer = Client().get("/blocked/")
    assert answer.status_code == 302 and answer["Location"].startswith("/account/sign-in?next=/blocked/")
    assert Client().post("/blocked/add", {"number": NUMBER, "categories": ["recall"]}).status_code == 302
    assert not Block.objects.exists()


def test_one_checkbox_per_category_of_the_practice_blocked_recalls_first(practice, desk):
    from consentry.patients.categories import create_category

    create_category(practice=practice, key="lab_results", marketing=False, notification_channels=["email"])
    page = desk.get("/blocked/").content.decode()
    assert "No number is blocked." in page
    add_form = page[page.index('id="add-h"') : page.index('id="list-h"')]
    values = re.findall(r'name="categories" value="([a-z_]+)"', add_form)
    assert values[0] == "recall" and "lab_results" in values and len(values) == len(set(values)) == 14
    assert re.search(r'value="recall"> Blocked Recalls</label>', add_form)
    assert 'aria-current="page">Blocked Communications' in page


def test_add_a_number_in_any_format_for_the_categories_ticked(practice, desk, user):
    ava = make_patient(practice, "Ava", last_name="Rivera", phones=[(NUMBER, "mobile")])
    ben = make_patient(practice, "Ben", last_name="Okafor", phones=[(NUMBER, "mobile")])
    make_patient(practice, "Cy", phones=[("+14155550199", "mobile")])
    answer = desk.post("/blocked/add", {"number": "(415) 555-0111", "categories": ["recall"]}, follow=True)
    page = answer.content.decode()
    assert answer.redirect_chain == [("/blocked/", 302)]
    assert f"{NUMBER} is blocked for recall." in page
    assert blocks(practice) == {NUMBER: ["recall"]}
    # A ledger event, with the staff user as its actor.
    assert block_events(practice) == [(NUMBER, '["recall"]', Source.STAFF, f"staff:{user.pk}")]
    row = row_of(page, NUMBER)
    assert ticked(row) == ["recall"]
    # The patients who list the number, linked to their page.
    assert re.findall(r'<a href="/patients/([0-9a-f-]+)/">([^<]+)</a>', row) == [
        (str(ben.pk), "Okafor, Ben"),
        (str(ava.pk), "Rivera, Ava"),
    ]
    assert "Cy" not in row


def test_adding_a_listed_number_adds_to_what_it_is_blocked_for(practice, desk):
    consent.set_block(practice=practice, number=NUMBER, categories=["survey"], source=Source.STAFF, actor="t")
    desk.post("/blocked/add", {"number": "415-555-0111", "categories": ["recall"]})
    assert blocks(practice) == {NUMBER: ["recall", "survey"]}
    # The same again records nothing: a change that changes nothing is no event.
    desk.post("/blocked/add", {"number": NUMBER, "categories": ["recall"]})
    assert len(block_events(practice)) == 2


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"number": "hello", "categories": ["recall"]}, "not a phone number: &#x27;hello&#x27;"),
        ({"number": "12", "categories": ["recall"]}, "not a phone number"),
        ({"number": "", "categories": ["recall"]}, "a phone number is required"),
        ({"number": NUMBER}, "tick at least one category"),
        ({"number": NUMBER, "categories": ["recall", "nope"]}, "unknown category: nope"),
    ],
)
def test_bad_input_when_adding_shows_the_error_and_changes_nothing(practice, desk, form, error):
    answer = desk.post("/blocked/add", form)
    page = answer.content.decode()
    assert answer.status_code == 422
    assert "Nothing was blocked:" in page and error in page
    # What was typed stays in the form.
    assert f'value="{form["number"]}"' in page
    assert not Block.objects.exists() and not block_events(practice)


def test_tick_and_untick_with_plain_form_posts_untick_the_last_and_it_leaves_the_list(practice, desk, user):
    consent.set_block(practice=practice, number=NUMBER, categories=["recall"], source=Source.STAFF, actor="t")
    url = f"/blocked/{NUMBER}/"
    answer = desk.post(url, {"categories": ["recall", "survey"]}, follow=True)
    assert answer.redirect_chain == [("/blocked/", 302)]
    assert f"{NUMBER} is blocked for recall, survey." in answer.content.decode()
    assert blocks(practice) == {NUMBER: ["recall", "survey"]}
    assert ticked(row_of(answer.content.decode(), NUMBER)) == ["recall", "survey"]
    desk.post(url, {"categories": ["survey"]})
    assert blocks(practice) == {NUMBER: ["survey"]}
    page = desk.post(url, {}, follow=True).content.decode()
    assert f"{NUMBER} is no longer blocked: it left the list." in page
    assert blocks(practice) == {} and NUMBER not in page.split('id="list-h"')[1]
    actor = f"staff:{user.pk}"
    assert [(state, who) for _, state, _, who in block_events(practice)][1:] == [
        ('["recall", "survey"]', actor),
        ('["survey"]', actor),
        ("[]", actor),
    ]
    # Gone from the list, the number is a 404 there.
    assert desk.post(url, {"categories": ["recall"]}).status_code == 404


def test_htmx_updates_answer_the_row_and_the_status_line(practice, desk):
    consent.set_block(practice=practice, number=NUMBER, categories=["recall"], source=Source.STAFF, actor="t")
    url = f"/blocked/{NUMBER}/"
    answer = desk.post(url, {"categories": ["recall", "marketing"]}, HTTP_HX_REQUEST="true")
    part = answer.content.decode()
    assert answer.status_code == 200 and "<html" not in part
    assert ticked(row_of(part, NUMBER)) == ["recall", "marketing"]
    assert re.search(
        r'<div id="blocks-status" hx-swap-oob="innerHTML"><p class="notice">\+14155550111 is blocked', part
    )
    assert blocks(practice) == {NUMBER: ["marketing", "recall"]}
    # Unticking the last: no row comes back, so the number leaves the page at once.
    gone = desk.post(url, {}, HTTP_HX_REQUEST="true").content.decode()
    assert "<tr>" not in gone and "is no longer blocked" in gone
    assert blocks(practice) == {}


def test_an_unknown_category_in_a_row_changes_nothing(practice, desk):
    consent.set_block(practice=practice, number=NUMBER, categories=["recall"], source=Source.STAFF, actor="t")
    url = f"/blocked/{NUMBER}/"
    page = desk.post(url, {"categories": ["nope"]}, follow=True).content.decode()
    assert "Nothing changed for +14155550111: unknown category: nope." in page
    part = desk.post(url, {"categories": ["recall", "nope"]}, HTTP_HX_REQUEST="true").content.decode()
    assert '<p class="error">Nothing changed' in part and ticked(row_of(part, NUMBER)) == ["recall"]
    assert blocks(practice) == {NUMBER: ["recall"]} and len(block_events(practice)) == 1


def test_a_block_made_here_is_what_the_engine_obeys(practice, desk):
    ava = make_patient(practice, "Ava", phones=[(NUMBER, "mobile")])
    desk.post("/blocked/add", {"number": NUMBER, "categories": ["recall"]})
    recall = create_message(
        practice=practice, kind="automation", category="recall", patient_ids=[ava.pk],
        content={"sms": "Time for a visit", "voice": "Time for a visit"},
    )  # fmt: skip
    assert [(d.channel, d.status, d.reason) for d in recall.deliveries] == [
        ("sms", "skipped", "blocked_for_category"),
        ("voice", "skipped", "blocked_for_category"),
    ]
    other = create_message(
        practice=practice, kind="automation", category="survey", patient_ids=[ava.pk], content={"sms": "How was it?"}
    )
    assert [(d.channel, d.status) for d in other.deliveries] == [("sms", "pending")]


def test_front_desk_and_admins_may_both_keep_the_list(practice):
    admin = signed_in(make_staff(practice, email="admin@oak.example", role="admin"))
    assert admin.get("/blocked/").status_code == 200
    admin.post("/blocked/add", {"number": NUMBER, "categories": ["recall"]})
    assert blocks(practice) == {NUMBER: ["recall"]}


def test_every_form_needs_the_csrf_token(practice, user):
    consent.set_block(practice=practice, number=NUMBER, categories=["recall"], source=Source.STAFF, actor="t")
    strict = signed_in(user, Client(enforce_csrf_checks=True))
    assert strict.post("/blocked/add", {"number": "+14155550122", "categories": ["recall"]}).status_code == 403
    assert strict.post(f"/blocked/{NUMBER}/", {}).status_code == 403
    assert blocks(practice) == {NUMBER: ["recall"]}
    page = strict.get("/blocked/").content.decode()
    assert page.count('name="csrfmiddlewaretoken"') >= 3  # sign out, add, and the row


def test_another_practices_numbers_are_never_listed_and_are_a_404(practice, desk):
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    make_patient(elm, "Zed", phones=[(NUMBER, "mobile")])
    make_patient(elm, "Yara", phones=[("+14155550188", "mobile")])
    consent.set_block(practice=elm, number=NUMBER, categories=["survey"], source=Source.STAFF, actor="t")
    consent.set_block(practice=elm, number="+14155550188", categories=["recall"], source=Source.STAFF, actor="t")
    page = desk.get("/blocked/").content.decode()
    assert "+14155550188" not in page and "No number is blocked." in page
    assert desk.post("/blocked/+14155550188/", {}).status_code == 404
    assert desk.post("/blocked/not-a-number/", {"categories": ["recall"]}).status_code == 404
    assert blocks(elm) == {NUMBER: ["survey"], "+14155550188": ["recall"]}
    # The same number blocked here too: only this practice's block, and its own patients.
    ava = make_patient(practice, "Ava", phones=[(NUMBER, "mobile")])
    desk.post("/blocked/add", {"number": NUMBER, "categories": ["recall"]})
    row = row_of(desk.get("/blocked/").content.decode(), NUMBER)
    assert ticked(row) == ["recall"] and "Zed" not in row and str(ava.pk) in row
    assert blocks(elm)[NUMBER] == ["survey"]


def test_names_and_what_was_typed_render_escaped(practice, desk):
    payload = "<script>alert(1)</script>"
    make_patient(practice, payload, last_name=payload, phones=[(NUMBER, "mobile")])
    desk.post("/blocked/add", {"number": NUMBER, "categories": ["recall"]})
    for page in (
        desk.get("/blocked/").content.decode(),
        desk.post(f"/blocked/{NUMBER}/", {"categories": ["recall"]}, HTTP_HX_REQUEST="true").content.decode(),
        desk.post("/blocked/add", {"number": payload, "categories": ["recall"]}).content.decode(),
    ):
        assert "<script>alert(1)" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
