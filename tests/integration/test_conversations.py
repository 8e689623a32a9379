"""Two-way conversations: texts in through the signed webhook, staff through the API, out through the worker."""

import pytest
from django.core.management import call_command
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentry.consent import ledger
from consentry.consent.models import ConsentEvent
from consentry.conversations.models import Conversation, ConversationEntry
from consentry.keywords.models import InboundMessage
from consentry.keywords.reasonable import assess
from consentry.messaging.models import Delivery, Message
from consentry.patients.practices import update_practice
from consentry.providers.models import SandboxMessage
from tests.conftest import Api, drain_worker, make_patient, make_practice, send_sms_webhook

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"
OTHER = "+14155550122"


def _outbox(number=PHONE):
    return list(SandboxMessage.objects.filter(to=number).order_by("pk").values_list("body", flat=True))


def _opted_out(practice, number=PHONE):
    return number in ledger.consent_state(practice.pk, [number]).sms_opted_out


def _text(client, body, sid, sender=PHONE):
    response = send_sms_webhook(client, body=body, sender=sender, sid=sid)
    assert response.status_code == 200, response.content
    return response


def _only_conversation(api):
    response = api.get("/conversations")
    assert response.status_code == 200
    [conversation] = response.json()
    return conversation


def _detail(api, conversation_id):
    response = api.get(f"/conversations/{conversation_id}")
    assert response.status_code == 200
    return response.json()


def _lines(detail):
    return [(e["direction"], e["body"]) for e in detail["entries"]]


def _system_lines(detail):
    return [e["body"] for e in detail["entries"] if e["direction"] == "system"]


def test_a_family_sharing_a_phone_has_one_conversation_that_lists_every_patient(client, practice, api):
    mother = make_patient(practice, "Ana", phones=[(PHONE, "mobile")])
    son = make_patient(practice, "Ben", phones=[(PHONE, "mobile")])
    make_patient(practice, "Cy", phones=[(OTHER, "mobile")])
    _text(client, "Is Ben's appointment at 3?", "SM1")
    _text(client, "HELP", "SM2")
    drain_worker()

    conversation = _only_conversation(api)
    assert conversation["phone"] == PHONE
    assert conversation["patients"] == [
        {"id": str(mother.pk), "first_name": "Ana"},
        {"id": str(son.pk), "first_name": "Ben"},
    ]
    assert (conversation["flag"], conversation["sms"], conversation["opted_out"]) == ("", "opted_in", False)
    detail = _detail(api, conversation["id"])
    [help_text] = _outbox()
    assert _lines(detail) == [
        ("inbound", "Is Ben's appointment at 3?"),
        ("inbound", "HELP"),
        ("outbound", help_reply_body(practice)),
    ]
    assert help_text.endswith(detail["entries"][2]["body"]) and detail["entries"][2]["delivery_status"] == "delivered"
    assert conversation["last_entry"]["direction"] == "outbound"
    assert Conversation.objects.count() == 1


def help_reply_body(practice):
    from consentry.conversations.inbound import help_reply

    return help_reply(practice)


def test_the_list_is_newest_activity_first_with_a_preview(client, practice, api):
    _text(client, "first number here", "SM1", sender=OTHER)
    _text(client, "x" * 200, "SM2")
    first, second = api.get("/conversations").json()
    assert (first["phone"], second["phone"]) == (PHONE, OTHER)
    assert first["patients"] == []  # a number no patient has yet still gets its conversation
    assert first["last_entry"]["direction"] == "inbound"
    assert first["last_entry"]["text"].startswith("xxx") and len(first["last_entry"]["text"]) <= 80
    _text(client, "me again", "SM3", sender=OTHER)
    assert [c["phone"] for c in api.get("/conversations").json()] == [OTHER, PHONE]
    assert [c["phone"] for c in api.get("/conversations", limit=1, offset=1).json()] == [PHONE]
    assert api.get("/conversations", limit=0).status_code == 422
    assert api.get("/conversations", flag="bogus").status_code == 422


def test_a_reply_is_stored_encrypted(client, practice, api):
    secret = "My rash is worse since Tuesday"
    _text(client, secret, "SM1")
    entry = ConversationEntry.objects.get()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT body FROM {ConversationEntry._meta.db_table} WHERE id = %s", [entry.pk])
        [(raw,)] = cursor.fetchall()
    assert raw and secret not in raw and "rash" not in raw
    assert entry.body == secret
    assert _lines(_detail(api, _only_conversation(api)["id"])) == [("inbound", secret)]


def test_please_stop_is_flagged_under_the_flag_policy_and_staff_confirm_it(client, practice, api):
    _text(client, "please stop texting me", "SM1")
    drain_worker()
    conversation = _only_conversation(api)
    assert conversation["flag"] == "possible_opt_out" and conversation["flag_rule"]
    assert conversation["flagged_at"] and conversation["sms"] == "opted_in"
    assert not _opted_out(practice) and not ConsentEvent.objects.exists()
    assert _outbox() == []  # nothing else happens until staff decide
    flagged = api.get("/conversations", flag="possible_opt_out").json()
    assert [c["id"] for c in flagged] == [conversation["id"]]

    response = api.post(f"/conversations/{conversation['id']}/opt-out", {})
    assert response.status_code == 200
    body = response.json()
    assert body["changed"] is True
    assert (body["conversation"]["flag"], body["conversation"]["opted_out"]) == ("", True)
    assert _opted_out(practice)
    event = ConsentEvent.objects.get(subject="sms", address=PHONE)
    assert (event.state, event.source, event.actor) == ("opted_out", "staff", "api:initial")
    assert event.evidence["conversation_id"] == conversation["id"]
    assert event.evidence["flag_rule"] == conversation["flag_rule"]
    [line] = _system_lines(body["conversation"])
    assert "opted out of texts from this practice" in line and "api:initial" in line
    assert api.get("/conversations", flag="possible_opt_out").json() == []
    drain_worker()
    assert _outbox() == []  # staff confirmations send no text

    # A second confirmation records nothing more.
    again = api.post(f"/conversations/{conversation['id']}/opt-out", {}).json()
    assert again["changed"] is False
    assert ConsentEvent.objects.filter(subject="sms").count() == 1
    assert ledger.verify_chain(practice.pk).ok


def test_auto_policy_opts_out_at_once_and_sends_exactly_one_confirmation(client, practice, api):
    make_patient(practice, "Ana", phones=[(PHONE, "mobile")])
    call_command("practice", "update", str(practice.pk), "--reasonable-means", "auto")
    _text(client, "please stop texting me", "SMauto")
    drain_worker()

    assert _opted_out(practice)
    event = ConsentEvent.objects.get(subject="sms", address=PHONE)
    assert (event.state, event.source) == ("opted_out", "sms_reply")
    assert event.evidence["message_sid"] == "SMauto"
    # The ledger names the encrypted inbound text; its words are not in the append-only ledger.
    assert "body" not in event.evidence
    assert InboundMessage.objects.get(pk=event.evidence["inbound_message"]).body == "please stop texting me"
    assert event.evidence["rule"]
    [confirmation] = _outbox()
    assert practice.name in confirmation and "START" in confirmation
    detail = _detail(api, _only_conversation(api)["id"])
    # Resolved at once: no flag left for staff, the system line says what happened.
    assert (detail["flag"], detail["opted_out"]) == ("", True)
    assert [e["direction"] for e in detail["entries"]] == ["inbound", "system", "outbound"]
    system = detail["entries"][1]["body"]
    assert "opted out of texts from this practice" in system and event.evidence["rule"] in system

    # Another such reply from the opted-out number sends nothing more.
    _text(client, "please stop texting me", "SMauto2")
    drain_worker()
    assert len(_outbox()) == 1
    assert ConsentEvent.objects.filter(subject="sms").count() == 1


def test_auto_policy_leaves_a_reply_it_is_not_sure_of_to_staff(client, practice, api):
    """Under auto, only a clear request opts out at once; one only the model reads as a request to stop
    is flagged for staff, as under flag."""
    update_practice(practice, {"reasonable_means": "auto"})
    unsure = assess("no more of these please", ["en"])
    assert unsure.possible_opt_out and not unsure.certain  # the case this test is about
    _text(client, "no more of these please", "SMunsure")
    drain_worker()
    conversation = _only_conversation(api)
    assert (conversation["flag"], conversation["sms"]) == ("possible_opt_out", "opted_in")
    assert not _opted_out(practice) and not ConsentEvent.objects.exists() and _outbox() == []


def test_auto_policy_in_provider_managed_mode_records_without_replying(client, practice):
    update_practice(practice, {"reasonable_means": "auto", "keyword_mode": "provider"})
    _text(client, "please stop texting me", "SM1")
    drain_worker()
    assert _opted_out(practice)
    assert _outbox() == [] and not Delivery.objects.exists()


def test_a_question_that_mentions_cancel_is_not_flagged(client, practice, api):
    update_practice(practice, {"reasonable_means": "auto"})
    _text(client, "can I cancel my appointment?", "SM1")
    drain_worker()
    conversation = _only_conversation(api)
    assert conversation["flag"] == "" and conversation["sms"] == "opted_in"
    assert not ConsentEvent.objects.exists() and _outbox() == []


def test_a_possible_opt_out_from_an_opted_out_number_is_not_flagged(client, practice, api):
    _text(client, "STOP", "SM1")
    _text(client, "please stop texting me", "SM2")
    assert _only_conversation(api)["flag"] == ""


def test_an_explicit_keyword_settles_a_flag(client, practice, api):
    _text(client, "please stop texting me", "SM1")
    assert _only_conversation(api)["flag"] == "possible_opt_out"
    _text(client, "stop", "SM2")
    conversation = _only_conversation(api)
    assert (conversation["flag"], conversation["opted_out"]) == ("", True)
    assert ConsentEvent.objects.get(subject="sms").source == "sms_keyword"


def test_a_staff_reply_reaches_the_phone_and_appears_in_the_conversation(client, practice, api):
    patient = make_patient(practice, "Ana", phones=[(PHONE, "mobile")])
    _text(client, "Can I come at 4 instead?", "SM1")
    conversation_id = _only_conversation(api)["id"]
    response = api.post(f"/conversations/{conversation_id}/replies", {"body": "Yes, 4pm works. See you then."})
    assert response.status_code == 201
    body = response.json()
    assert body["entry"]["direction"] == "outbound" and body["entry"]["author"] == "api:initial"
    assert body["entry"]["delivery_status"] == "pending"
    drain_worker()
    [sent] = _outbox()
    assert "Yes, 4pm works. See you then." in sent
    delivery = Delivery.objects.get(pk=body["delivery_id"])
    assert (delivery.status, delivery.patient_id, delivery.message.kind) == ("delivered", patient.pk, "manual")
    detail = _detail(api, conversation_id)
    assert _lines(detail) == [("inbound", "Can I come at 4 instead?"), ("outbound", "Yes, 4pm works. See you then.")]
    assert detail["entries"][1]["delivery_status"] == "delivered"


def test_a_staff_reply_to_an_opted_out_number_is_refused_and_sends_nothing(client, practice, api):
    _text(client, "STOP", "SM1")
    drain_worker()
    assert len(_outbox()) == 1  # the one confirmation
    conversation = _only_conversation(api)
    assert conversation["opted_out"] is True
    deliveries, messages, entries = Delivery.objects.count(), Message.objects.count(), ConversationEntry.objects.count()

    response = api.post(f"/conversations/{conversation['id']}/replies", {"body": "We miss you!"})
    assert response.status_code == 409
    assert response.json()["reason"] == response.json()["error"]["code"] == "sms_opted_out"
    assert "opted out of texts from this practice" in response.json()["error"]["message"]
    assert "START" in response.json()["error"]["message"]
    drain_worker()
    assert len(_outbox()) == 1
    assert (Delivery.objects.count(), Message.objects.count(), ConversationEntry.objects.count()) == (
        deliveries,
        messages,
        entries,
    )
    detail = _detail(api, conversation["id"])
    assert [e["direction"] for e in detail["entries"]] == ["inbound", "system", "outbound"]
    [line] = _system_lines(detail)
    assert "opted out of texts from this practice" in line and "STOP" in line


def test_a_stop_after_a_staff_reply_is_queued_still_wins_in_the_worker(client, practice, api):
    _text(client, "hello?", "SM1")
    conversation_id = _only_conversation(api)["id"]
    reply = api.post(f"/conversations/{conversation_id}/replies", {"body": "Hi, how can we help?"}).json()
    _text(client, "STOP", "SM2")
    drain_worker()
    delivery = Delivery.objects.get(pk=reply["delivery_id"])
    assert (delivery.status, delivery.reason) == ("skipped", "sms_opted_out")
    assert all("how can we help" not in body for body in _outbox())


def test_opting_back_in_by_text_is_shown_and_replies_work_again(client, practice, api):
    _text(client, "STOP", "SM1")
    _text(client, "START", "SM2")
    conversation = _only_conversation(api)
    assert conversation["opted_out"] is False
    detail = _detail(api, conversation["id"])
    assert "opted back in" in _system_lines(detail)[-1]
    assert api.post(f"/conversations/{conversation['id']}/replies", {"body": "Welcome back"}).status_code == 201


def test_a_carrier_opt_out_shows_in_the_conversation_from_the_ledger(client, practice, api, twilio):
    twilio.errors[PHONE] = (400, 21610, "Attempt to send to unsubscribed recipient")
    _text(client, "who is this?", "SM1")
    conversation_id = _only_conversation(api)["id"]
    assert api.post(f"/conversations/{conversation_id}/replies", {"body": "Oak Clinic here"}).status_code == 201
    drain_worker()
    assert ConsentEvent.objects.get(subject="sms", address=PHONE).source == "carrier"
    detail = _detail(api, conversation_id)
    assert detail["opted_out"] is True
    assert [(e["direction"], e["id"] is None) for e in detail["entries"]] == [
        ("inbound", False),
        ("outbound", False),
        ("system", True),
    ]
    assert "carrier" in detail["entries"][2]["body"]
    assert _only_conversation(api)["sms"] == "opted_out"
    refused = api.post(f"/conversations/{conversation_id}/replies", {"body": "Hello?"})
    assert (refused.status_code, refused.json()["reason"]) == (409, "sms_opted_out")


def test_spanish_keywords_are_answered_in_spanish_when_the_practice_enables_them(client, practice, api):
    call_command("practice", "update", str(practice.pk), "--keyword-languages", "es")
    _text(client, "Parar", "SM1")
    drain_worker()
    assert _opted_out(practice)
    event = ConsentEvent.objects.get(subject="sms")
    assert (event.source, event.evidence["keyword"]) == ("sms_keyword", "PARAR")
    [confirmation] = _outbox()
    assert practice.name in confirmation and "Se canceló su suscripción" in confirmation
    assert "INICIAR" in confirmation and "START" in confirmation
    assert "unsubscribed" not in confirmation
    _text(client, "AYUDA", "SM2")
    drain_worker()
    help_text = _outbox()[-1]
    assert "Pueden aplicarse tarifas de mensajes y datos" in help_text and "PARAR" in help_text
    detail = _detail(api, _only_conversation(api)["id"])
    assert [e["direction"] for e in detail["entries"]] == ["inbound", "system", "outbound", "inbound", "outbound"]


def test_without_spanish_parar_is_a_plain_reply(client, practice, api):
    _text(client, "PARAR", "SM1")
    drain_worker()
    assert not _opted_out(practice) and _outbox() == []
    assert InboundMessage.objects.get().keyword == "none"
    detail = _detail(api, _only_conversation(api)["id"])
    assert _lines(detail)[0] == ("inbound", "PARAR")


def test_a_replayed_message_sid_adds_one_entry_only(client, practice, api):
    for _ in range(3):
        _text(client, "Running late, sorry", "SMsame")
    _text(client, "HELP", "SMhelp")
    _text(client, "HELP", "SMhelp")
    drain_worker()
    detail = _detail(api, _only_conversation(api)["id"])
    assert [e["direction"] for e in detail["entries"]] == ["inbound", "inbound", "outbound"]
    assert len(_outbox()) == 1


def test_another_practices_conversation_is_404(client, practice, api):
    _text(client, "hello", "SM1")
    _text(client, "please stop texting me", "SM2", sender=OTHER)
    mine = {c["phone"]: c["id"] for c in api.get("/conversations").json()}
    _other_practice, other_key = make_practice(name="Elm Clinic", number="+14155550200")
    other = Api(other_key)
    assert other.get("/conversations").json() == []
    assert other.get(f"/conversations/{mine[PHONE]}").status_code == 404
    assert other.post(f"/conversations/{mine[PHONE]}/replies", {"body": "hi"}).status_code == 404
    assert other.post(f"/conversations/{mine[OTHER]}/opt-out", {}).status_code == 404
    assert other.get("/conversations/not-a-uuid").status_code == 404
    assert not Delivery.objects.exists() and not ConsentEvent.objects.exists()
    assert Conversation.objects.get(phone=OTHER).flag == "possible_opt_out"


@pytest.mark.parametrize("body", ["", "   \n", "x" * 1601, 42, None])
def test_a_bad_reply_body_is_422_and_sends_nothing(client, practice, api, body):
    _text(client, "hello", "SM1")
    conversation_id = _only_conversation(api)["id"]
    response = api.post(f"/conversations/{conversation_id}/replies", {"body": body})
    assert response.status_code == 422
    if isinstance(body, str):
        assert response.json()["error"]["field"] == "body"
    drain_worker()
    assert not Delivery.objects.exists() and not Message.objects.exists() and _outbox() == []
    assert ConversationEntry.objects.count() == 1


def test_a_reply_as_long_as_a_text_allows_goes_out_whole(client, practice, api):
    _text(client, "hello", "SM1")
    conversation_id = _only_conversation(api)["id"]
    room = 1600 - len(f"{practice.name}: ")  # every text starts with the practice's name
    too_long = api.post(f"/conversations/{conversation_id}/replies", {"body": "y" * (room + 1)})
    assert too_long.status_code == 422 and too_long.json()["error"]["field"] == "body"
    assert api.post(f"/conversations/{conversation_id}/replies", {"body": "y" * room}).status_code == 201
    drain_worker()
    assert _outbox() == [f"{practice.name}: " + "y" * room]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=40),
        st.lists(st.text(max_size=5), max_size=3),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    )
)
def test_random_reply_bodies_never_500(client, practice, api, body):
    conversation = Conversation.objects.get_or_create(practice=practice, phone=PHONE)[0]
    response = api.post(f"/conversations/{conversation.pk}/replies", {"body": body})
    assert response.status_code in (201, 422)
    # NUL cannot be texted (nor stored everywhere): a 422 like any other unusable body.
    assert (response.status_code == 201) == (isinstance(body, str) and bool(body.strip()) and "\x00" not in body)
