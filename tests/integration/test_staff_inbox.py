"""The staff inbox: conversations newest first with possible opt-outs on top, confirming or clearing
a flag, opted-out phones in red with their system line, search, replies and their refusals, the
parts of the page that refresh themselves, isolation between practices, escaping."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from consentry.consent import ledger
from consentry.consent import services as consent
from consentry.consent.models import ConsentEvent
from consentry.conversations.models import Conversation, ConversationEntry
from consentry.messaging.models import Delivery, Message
from consentry.providers.models import SandboxMessage
from tests.conftest import (
    STAFF_PASSWORD,
    drain_worker,
    make_patient,
    make_practice,
    make_staff,
    send_sms_webhook,
)

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"
OTHER = "+14155550122"
THIRD = "+14155550133"
REFRESH = {"HTTP_X_CONSENTRY_REFRESH": "1"}


def text_in(body, sid, sender=PHONE):
    response = send_sms_webhook(Client(), body=body, sender=sender, sid=sid)
    assert response.status_code == 200, response.content


def conversation(phone=PHONE) -> Conversation:
    return Conversation.objects.get(phone=phone)


def listed(page) -> list[str]:
    """The phones of the conversation list, top to bottom."""
    return re.findall(r'<span class="conv-phone">([^<]+)</span>', page.content.decode())


def row(page, phone) -> str:
    """The list item of one phone's conversation."""
    for item in re.findall(r'<li class="conv[^"]*">.*?</li>', page.content.decode(), re.S):
        if f'<span class="conv-phone">{phone}</span>' in item:
            return item
    raise AssertionError(f"{phone} not listed")


def poll(client, path, target, **params):
    """One of the page's own refreshes, as htmx sends it."""
    return client.get(path, params, HTTP_HX_REQUEST="true", HTTP_HX_TARGET=target, **REFRESH)


def hidden(page, name_id) -> str:
    return re.search(rf'id="{name_id}" name="\w+" value="([^"]*)"', page.content.decode()).group(1)


def thread_url(phone=PHONE) -> str:
    return f"/inbox/{conversation(phone).pk}/"


def test_the_inbox_needs_a_signed_in_user(practice):
    answer = Client().get("/inbox/")
    assert answer.status_code == 302 and answer["Location"].startswith("/account/sign-in?next=/inbox/")
    # A refresh of the page whose session ended sends the whole page to sign in, not the form into the list.
    refresh = Client().get(
        "/inbox/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="inbox-rows", HTTP_HX_CURRENT_URL="http://testserver/inbox/"
    )
    assert refresh["HX-Redirect"] == "/account/sign-in?next=%2Finbox%2F"


def test_conversations_are_newest_first_with_possible_opt_outs_on_top(practice, desk):
    make_patient(practice, "Ana", last_name="Rivera", phones=[(PHONE, "mobile")])
    make_patient(practice, "Ben", last_name="Rivera", phones=[(PHONE, "mobile")])
    text_in("Is Ben's appointment at 3?", "SM1", PHONE)
    text_in("please stop texting me", "SM2", OTHER)
    text_in("Running late", "SM3", THIRD)

    page = desk.get("/inbox/")
    assert page.status_code == 200
    assert listed(page) == [OTHER, THIRD, PHONE]
    family = row(page, PHONE)
    assert "Ana Rivera, Ben Rivera" in family and "Is Ben&#x27;s appointment at 3?" in family
    assert re.search(r'<time class="conv-time" datetime="[^"]+">\w{3} \d+, \d\d:\d\d</time>', family)
    assert "No patient lists this number" in row(page, THIRD)
    flagged = row(page, OTHER)
    assert "conv-flagged" in flagged and "Possible opt-out" in flagged
    assert f'Confirm opt-out<span class="sr-only"> of {OTHER}</span>' in flagged
    assert "Confirm opt-out" not in family and "Confirm opt-out" not in row(page, THIRD)
    # A new text moves its conversation up, below the one waiting for staff.
    text_in("Never mind, on time", "SM4", PHONE)
    assert listed(desk.get("/inbox/")) == [OTHER, PHONE, THIRD]


def test_confirming_an_opt_out_records_one_ledger_event_by_the_staff_member(practice, user, desk):
    text_in("please stop texting me", "SM1")
    url = thread_url()
    answer = desk.post(f"{url}opt-out", {"q": "rivera"})
    assert answer.status_code == 302 and answer["Location"] == f"{url}?q=rivera"

    event = ConsentEvent.objects.get(subject="sms", address=PHONE)
    assert (event.state, event.source, event.actor) == ("opted_out", "staff", f"staff:{user.pk}")
    assert event.evidence["flag"] == "possible_opt_out" and event.evidence["conversation_id"] == str(conversation().pk)
    assert conversation().flag == ""
    page = desk.get(url)
    assert "is opted out of texts" in page.content.decode()  # the flash message
    assert "conv-opted-out" in row(page, PHONE) and "Possible opt-out" not in row(page, PHONE)
    assert "recorded by staff on request" in row(page, PHONE)
    # A second click records nothing more.
    desk.post(f"{url}opt-out")
    assert ConsentEvent.objects.filter(subject="sms").count() == 1
    assert ledger.verify_chain(practice.pk).ok
    drain_worker()
    assert not SandboxMessage.objects.filter(to=PHONE).exists()  # a staff opt-out sends no text


def test_clearing_a_flag_that_was_not_an_opt_out_records_who_decided_and_no_consent_change(practice, desk, user):
    text_in("please stop texting me", "SM1")
    text_in("hello", "SM2", OTHER)
    assert listed(desk.get("/inbox/")) == [PHONE, OTHER]
    answer = desk.post(f"{thread_url()}clear-flag")
    assert answer.status_code == 302
    assert conversation().flag == "" and not ConsentEvent.objects.exists()
    page = desk.get("/inbox/")
    assert listed(page) == [OTHER, PHONE]  # back in its place by activity
    assert "Possible opt-out" not in row(page, PHONE) and "conv-opted-out" not in row(page, PHONE)
    note = conversation().entries.get(direction="system")
    assert "not a request to stop" in note.body and note.author == f"staff:{user.pk}"


def test_an_opted_out_conversation_is_red_with_its_system_line(practice, desk):
    text_in("STOP", "SM1")
    text_in("hello", "SM2", OTHER)
    page = desk.get("/inbox/")
    red = row(page, PHONE)
    assert "conv-opted-out" in red
    assert '<span aria-hidden="true">⊘</span> Opted out of texts' in red  # a label, not only a colour
    assert "The patient opted out of texts from this practice: texted STOP." in red
    assert "conv-opted-out" not in row(page, OTHER) and "Opted out" not in row(page, OTHER)

    thread = desk.get(thread_url()).content.decode()
    assert 'class="thread-head opted-out"' in thread
    assert re.search(r'class="line line-system">.*texted STOP', thread, re.S)
    # The reply box is off, with the reason.
    assert re.search(r'<textarea id="reply-body"[^>]* disabled', thread)
    assert "Replies are off:</strong> +14155550111 opted out of texts from this practice" in thread


def test_search_finds_conversations_by_patient_name_and_by_phone_in_any_format(practice, desk):
    make_patient(practice, "Ava", last_name="Rivera", phones=[(PHONE, "mobile")])
    make_patient(practice, "Cleo", last_name="Okafor", phones=[(OTHER, "mobile")], emails=["cleo@x.example"])
    text_in("one", "SM1", PHONE)
    text_in("two", "SM2", OTHER)
    text_in("three", "SM3", THIRD)
    for q, expected in [
        ("", [THIRD, OTHER, PHONE]),
        ("rivera", [PHONE]),
        ("ava riv", [PHONE]),
        ("CLE", [OTHER]),
        ("(415) 555-0122", [OTHER]),
        ("415.555.0111", [PHONE]),
        ("+1 415 555 0133", [THIRD]),
        ("nobody", []),
        ("(415) 555-0199", []),
    ]:
        page = desk.get("/inbox/", {"q": q})
        assert page.status_code == 200
        assert listed(page) == expected, q
    assert "No conversation matches “nobody”" in desk.get("/inbox/", {"q": "nobody"}).content.decode()
    # Search as you type answers the list alone.
    typed = desk.get("/inbox/", {"q": "okafor"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="inbox-rows")
    assert listed(typed) == [OTHER] and "<h1>" not in typed.content.decode()


def test_a_reply_goes_out_through_the_delivery_path_and_shows_in_the_thread(practice, user, desk):
    patient = make_patient(practice, "Ana", phones=[(PHONE, "mobile")])
    text_in("Can I come at 4 instead?", "SM1")
    url = thread_url()
    answer = desk.post(f"{url}reply", {"body": "Yes, 4pm works.", "q": ""}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    html = answer.content.decode()
    assert "Reply sent." in html
    assert re.search(r'<textarea id="reply-body"[^>]*required></textarea>', html)  # emptied for the next one
    assert 'id="thread-live" hx-swap-oob="innerHTML"' in html and "Yes, 4pm works." in html

    delivery = Delivery.objects.get()
    assert (delivery.message.kind, delivery.message.actor, delivery.patient_id) == (
        "manual",
        f"staff:{user.pk}",
        patient.pk,
    )
    drain_worker()
    assert [m.body for m in SandboxMessage.objects.filter(to=PHONE)] == [f"{practice.name}: Yes, 4pm works."]
    thread = desk.get(url).content.decode()
    assert re.search(
        r'Sent by Dana Desk \(staff\).*?<span class="status status-delivered">delivered</span>.*?Yes, 4pm works\.',
        thread,
        re.S,
    )
    # Without htmx, the form posts and comes back to the conversation.
    plain = desk.post(f"{url}reply", {"body": "See you then.", "q": "ana"})
    assert plain.status_code == 302 and plain["Location"] == f"{url}?q=ana"
    assert ConversationEntry.objects.filter(direction="outbound").count() == 2


def _nothing_more_queued(counts):
    now = (
        Delivery.objects.count(),
        Message.objects.count(),
        ConversationEntry.objects.count(),
        DBTaskResult.objects.count(),
    )
    assert now == counts


def _counts():
    return (
        Delivery.objects.count(),
        Message.objects.count(),
        ConversationEntry.objects.count(),
        DBTaskResult.objects.count(),
    )


def test_a_reply_to_an_opted_out_number_is_refused_with_the_reason_and_nothing_queued(practice, desk):
    text_in("STOP", "SM1")
    drain_worker()
    counts = _counts()
    url = thread_url()
    refused = desk.post(f"{url}reply", {"body": "We miss you!"})
    assert refused.status_code == 409
    html = refused.content.decode()
    assert "Not sent: +14155550111 opted out of texts from this practice" in html and "texting START" in html
    assert "We miss you!" in html  # what was typed is kept
    by_htmx = desk.post(f"{url}reply", {"body": "We miss you!"}, HTTP_HX_REQUEST="true")
    assert by_htmx.status_code == 200 and "opted out of texts from this practice" in by_htmx.content.decode()
    drain_worker()
    _nothing_more_queued(counts)
    assert SandboxMessage.objects.filter(to=PHONE).count() == 1  # the STOP's one confirmation


def test_a_reply_to_a_blocked_number_is_refused_with_the_reason_and_nothing_queued(practice, user, desk):
    text_in("hello", "SM1")
    consent.set_block(practice=practice, number=PHONE, categories=["system"], source="staff", actor="staff:1")
    counts = _counts()
    url = thread_url()
    page = desk.get(url).content.decode()
    assert "Replies are off:</strong> +14155550111 is on the Blocked Communications list" in page
    refused = desk.post(f"{url}reply", {"body": "Your results are in"})
    assert refused.status_code == 409
    assert "Not sent: +14155550111 is on the Blocked Communications list" in refused.content.decode()
    drain_worker()
    _nothing_more_queued(counts)
    assert not SandboxMessage.objects.exists()


def test_an_empty_reply_is_refused_and_sends_nothing(practice, desk):
    text_in("hello", "SM1")
    counts = _counts()
    answer = desk.post(f"{thread_url()}reply", {"body": "   "}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200 and "Not sent: write the text to send." in answer.content.decode()
    _nothing_more_queued(counts)


def test_the_list_refreshes_itself_and_answers_no_content_when_nothing_changed(practice, desk):
    text_in("first", "SM1")
    fragment = poll(desk, "/inbox/", "inbox-rows")
    assert fragment.status_code == 200 and "<h1>" not in fragment.content.decode()
    assert listed(fragment) == [PHONE]
    version = hidden(fragment, "rows-v")
    assert poll(desk, "/inbox/", "inbox-rows", v=version).status_code == 204
    text_in("a new text from another phone", "SM2", OTHER)
    fresh = poll(desk, "/inbox/", "inbox-rows", v=version)
    assert fresh.status_code == 200 and listed(fresh) == [OTHER, PHONE]
    assert "a new text from another phone" in row(fresh, OTHER)
    # The refresh keeps the search being shown.
    assert listed(poll(desk, "/inbox/", "inbox-rows", q="415-555-0111", v=version)) == [PHONE]


def test_the_open_conversation_refreshes_itself_and_turns_red_on_a_stop(practice, desk):
    text_in("hello", "SM1")
    url = thread_url()
    page = desk.get(url)
    assert f'hx-get="{url}" hx-trigger="every 5s"' in page.content.decode()
    assert """hx-headers='{"X-Consentry-Refresh": "1"}'""" in page.content.decode()
    version, shown = hidden(page, "thread-v"), hidden(page, "reply-shown")
    assert shown == "open"
    assert poll(desk, url, "thread-live", v=version, shown=shown).status_code == 204

    text_in("are you open saturday?", "SM2")
    newer = poll(desk, url, "thread-live", v=version, shown=shown)
    assert newer.status_code == 200 and "are you open saturday?" in newer.content.decode()
    assert "reply-box" not in newer.content.decode()  # the reply being typed is left alone
    version = hidden(newer, "thread-v")

    text_in("STOP", "SM3")
    red = poll(desk, url, "thread-live", v=version, shown=shown).content.decode()
    assert 'class="thread-head opted-out"' in red and "texted STOP" in red
    # Whether a reply may go changed: the reply box comes too, switched off with the reason.
    assert '<div id="reply-box" hx-swap-oob="innerHTML">' in red
    assert re.search(r'<textarea id="reply-body"[^>]* disabled', red)
    version = re.search(r'id="thread-v" name="v" value="([^"]*)"', red).group(1)
    assert poll(desk, url, "thread-live", v=version, shown="sms_opted_out").status_code == 204


def test_the_page_s_own_refreshes_do_not_keep_an_idle_session_alive(practice):
    user = make_staff(practice)
    text_in("hello", "SM1")
    idle, working = Client(), Client()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for client in (idle, working):
            assert (
                client.post("/account/sign-in", {"username": user.email, "password": STAFF_PASSWORD}).status_code == 302
            )
    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        assert idle.get("/inbox/").status_code == 200
        assert working.get("/inbox/").status_code == 200
    with time_machine.travel(start + timedelta(minutes=20), tick=False):
        assert poll(idle, "/inbox/", "inbox-rows").status_code == 200
        assert working.get("/inbox/").status_code == 200  # the person at work
    with time_machine.travel(start + timedelta(minutes=26), tick=False):
        ended = poll(idle, "/inbox/", "inbox-rows")
        assert ended["HX-Redirect"].startswith("/account/sign-in?next=")
        assert idle.get("/inbox/")["Location"].startswith("/account/sign-in")
        assert poll(working, "/inbox/", "inbox-rows").status_code == 200


def test_another_practices_conversation_is_404_and_not_listed(practice, desk):
    text_in("please stop texting me", "SM1")
    other, _key = make_practice(name="Elm Clinic", number="+14155550200")
    theirs = Conversation.objects.create(practice=other, phone=OTHER, flag="possible_opt_out")
    assert listed(desk.get("/inbox/")) == [PHONE]
    base = f"/inbox/{theirs.pk}/"
    assert desk.get(base).status_code == 404
    assert poll(desk, base, "thread-live").status_code == 404
    assert desk.post(f"{base}reply", {"body": "hi"}).status_code == 404
    assert desk.post(f"{base}opt-out").status_code == 404
    assert desk.post(f"{base}clear-flag").status_code == 404
    assert desk.get("/inbox/not-a-uuid/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.flag == "possible_opt_out"
    assert not Delivery.objects.exists() and not ConsentEvent.objects.exists()


def test_a_patient_s_words_are_escaped(practice, desk):
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    make_patient(practice, "<b>Eve</b>", phones=[(PHONE, "mobile")])
    text_in(attack, "SM1")
    for html in (desk.get("/inbox/").content.decode(), desk.get(thread_url()).content.decode()):
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;b&gt;Eve&lt;/b&gt;" in html and "<b>Eve</b>" not in html


def test_the_inbox_templates_need_no_inline_script_style_or_handler():
    """The Content-Security-Policy allows none of them."""
    folder = Path(__file__).resolve().parents[2] / "src/consentry/web/templates/staff"
    templates = [folder / "inbox.html", *folder.glob("_inbox_*.html")]
    assert len(templates) >= 6
    for template in templates:
        text = template.read_text()
        assert "<script" not in text and "style=" not in text, template.name
        assert not re.search(r"\son[a-z]+\s*=", text), template.name
