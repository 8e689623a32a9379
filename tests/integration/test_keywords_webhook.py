"""Inbound texts: signature first, then STOP / START / HELP recorded and confirmed once."""

import pytest

from consentry.consent import ledger
from consentry.consent.models import ConsentEvent
from consentry.keywords.classify import HELP, OPT_IN, OPT_OUT
from consentry.keywords.models import InboundMessage
from consentry.messaging.models import Delivery
from consentry.messaging.planning import create_message
from consentry.patients.models import KeywordMode
from consentry.providers.models import SandboxMessage
from tests.conftest import drain_worker, make_patient, make_practice, send_sms_webhook

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"


def _opted_out(practice, number=PHONE):
    return number in ledger.consent_state(practice.pk, [number]).sms_opted_out


def _outbox(number=PHONE):
    return list(SandboxMessage.objects.filter(to=number).order_by("pk").values_list("body", flat=True))


def test_a_bad_signature_is_403_and_changes_nothing(client, practice):
    response = send_sms_webhook(client, body="STOP", sender=PHONE, signature="bm90IGEgc2lnbmF0dXJl")
    assert response.status_code == 403
    assert not _opted_out(practice)
    assert not InboundMessage.objects.exists() and not ConsentEvent.objects.exists()


def test_a_missing_signature_is_403(client, practice):
    params = {"From": PHONE, "To": practice.texting_number, "Body": "STOP", "MessageSid": "SM1"}
    assert client.post("/webhooks/twilio/sms", params).status_code == 403
    assert not _opted_out(practice)


def test_a_signature_made_with_another_practices_token_is_403(client, practice):
    response = send_sms_webhook(client, body="STOP", sender=PHONE, token="someone-elses-token")
    assert response.status_code == 403
    assert not _opted_out(practice)


def test_a_text_to_a_number_no_practice_owns_is_403(client, practice):
    assert send_sms_webhook(client, body="STOP", sender=PHONE, to="+14155550999").status_code == 403


def test_a_signed_request_missing_from_is_400(client, practice):
    assert send_sms_webhook(client, body="STOP", sender="").status_code == 400
    assert not ConsentEvent.objects.exists()


def test_a_signed_request_with_a_garbage_sender_is_400(client, practice):
    assert send_sms_webhook(client, body="STOP", sender="not-a-number").status_code == 400
    assert not ConsentEvent.objects.exists()


def test_get_is_not_allowed(client, practice):
    assert client.get("/webhooks/twilio/sms").status_code == 405


@pytest.mark.parametrize("keyword", sorted(OPT_OUT))
def test_every_opt_out_keyword_records_an_opt_out_with_its_evidence(client, practice, keyword):
    response = send_sms_webhook(client, body=keyword, sender=PHONE, sid="SMstop")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert _opted_out(practice)
    event = ConsentEvent.objects.get(practice=practice, address=PHONE)
    assert (event.subject, event.state, event.source, event.actor) == ("sms", "opted_out", "sms_keyword", PHONE)
    assert event.evidence["message_sid"] == "SMstop"
    assert event.evidence["keyword"] == keyword


@pytest.mark.parametrize(
    "body", ["stop", " Stop. ", "STOP!!!", "\tstop\n", "Opt out", "opt  OUT", "¡STOP!", "unsubscribe."]
)
def test_keywords_match_the_whole_message_ignoring_case_whitespace_and_punctuation(client, practice, body):
    send_sms_webhook(client, body=body, sender=PHONE)
    assert _opted_out(practice)


@pytest.mark.parametrize("body", ["stop texting me", "please stop", "STOP 2", "STOPP", "un stop", "opt-out", ""])
def test_messages_that_are_not_exactly_a_keyword_change_nothing(client, practice, body):
    send_sms_webhook(client, body=body, sender=PHONE)
    assert not _opted_out(practice)
    assert not ConsentEvent.objects.exists()
    assert InboundMessage.objects.count() == 1  # still received and kept


@pytest.mark.parametrize("keyword", sorted(OPT_IN))
def test_every_opt_in_keyword_opts_the_number_back_in(client, practice, keyword):
    send_sms_webhook(client, body="STOP", sender=PHONE, sid="SM1")
    send_sms_webhook(client, body=keyword.lower(), sender=PHONE, sid="SM2")
    assert not _opted_out(practice)
    latest = ConsentEvent.objects.filter(practice=practice, address=PHONE).order_by("-seq").first()
    assert (latest.state, latest.source) == ("opted_in", "sms_keyword")


@pytest.mark.parametrize("keyword", sorted(HELP))
def test_help_replies_with_practice_name_contact_and_how_to_stop(client, practice, keyword):
    send_sms_webhook(client, body=keyword, sender=PHONE)
    drain_worker()
    [reply] = _outbox()
    assert practice.name in reply and practice.contact_phone in reply
    assert "Reply STOP" in reply and "rates may apply" in reply
    assert not ConsentEvent.objects.exists()


def test_stop_sends_exactly_one_confirmation_through_the_delivery_path(client, practice):
    send_sms_webhook(client, body="STOP", sender=PHONE)
    drain_worker()
    [confirmation] = _outbox()
    assert practice.name in confirmation and "START" in confirmation
    delivery = Delivery.objects.get(address=PHONE)
    # The opt-out it confirms did not block it.
    assert (delivery.status, delivery.message.kind) == ("delivered", "keyword_reply")


def test_a_second_stop_from_an_opted_out_number_sends_nothing_more(client, practice):
    send_sms_webhook(client, body="STOP", sender=PHONE, sid="SM1")
    send_sms_webhook(client, body="stop", sender=PHONE, sid="SM2")
    drain_worker()
    assert len(_outbox()) == 1
    assert ConsentEvent.objects.count() == 1


def test_start_confirms_once_and_says_how_to_stop(client, practice):
    send_sms_webhook(client, body="STOP", sender=PHONE, sid="SM1")
    send_sms_webhook(client, body="START", sender=PHONE, sid="SM2")
    send_sms_webhook(client, body="START", sender=PHONE, sid="SM3")
    drain_worker()
    assert len(_outbox()) == 2
    assert "STOP" in _outbox()[1]


def test_provider_managed_mode_records_without_replying(client, practice):
    practice.keyword_mode = KeywordMode.PROVIDER_MANAGED
    practice.save()
    send_sms_webhook(client, body="STOP", sender=PHONE, extra={"OptOutType": "STOP"})
    send_sms_webhook(client, body="HELP", sender=PHONE, sid="SM2", extra={"OptOutType": "HELP"})
    drain_worker()
    assert _opted_out(practice)
    assert _outbox() == []


def test_a_replayed_webhook_is_processed_once(client, practice):
    for _ in range(3):
        assert send_sms_webhook(client, body="STOP", sender=PHONE, sid="SMsame").status_code == 200
    send_sms_webhook(client, body="START", sender=PHONE, sid="SMsame")  # same sid: a replay, ignored
    drain_worker()
    assert _opted_out(practice)
    assert InboundMessage.objects.count() == 1
    assert ConsentEvent.objects.count() == 1
    assert len(_outbox()) == 1


def test_a_new_auth_token_counts_from_the_next_request(client, practice):
    assert send_sms_webhook(client, body="HELP", sender=PHONE, sid="SM1").status_code == 200
    practice.twilio_auth_token = "a-rotated-token-0123456789abcdef"
    practice.save(update_fields=["twilio_auth_token"])
    # The token the webhook knew a moment ago no longer verifies; the new one does.
    assert send_sms_webhook(client, body="STOP", sender=PHONE, sid="SM2").status_code == 403
    assert not _opted_out(practice)
    answer = send_sms_webhook(client, body="STOP", sender=PHONE, sid="SM3", token="a-rotated-token-0123456789abcdef")
    assert answer.status_code == 200
    assert _opted_out(practice)


def test_a_stop_whose_message_id_was_seen_at_another_practice_is_no_replay(client, practice):
    # Message ids are unique within a provider account, and every practice has its own account.
    other, _ = make_practice(name="Elm", number="+14155550900")
    assert (
        send_sms_webhook(client, body="Hello", sender="+14155550199", to="+14155550900", sid="SMshared").status_code
        == 200
    )
    assert send_sms_webhook(client, body="STOP", sender=PHONE, sid="SMshared").status_code == 200
    assert _opted_out(practice) and not _opted_out(other)
    assert InboundMessage.objects.filter(provider_ref="SMshared").count() == 2
    drain_worker()
    assert len(_outbox()) == 1  # its confirmation
    # ...while a replay at the same practice is still a replay.
    assert send_sms_webhook(client, body="START", sender=PHONE, sid="SMshared").status_code == 200
    assert _opted_out(practice) and ConsentEvent.objects.filter(practice=practice).count() == 1


def test_a_stop_from_a_number_no_patient_has_yet_waits_for_it(client, practice):
    send_sms_webhook(client, body="STOP", sender=PHONE)
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    planned = create_message(
        practice=practice,
        kind="manual",
        category="recall",
        patient_ids=[patient.pk],
        content={"sms": "Time for a check-up"},
    )
    assert [(d.channel, d.status, d.reason) for d in planned.deliveries] == [("sms", "skipped", "sms_opted_out")]


def test_a_stop_from_a_shared_phone_stops_every_patient_who_shares_it(client, practice):
    kids = [make_patient(practice, first_name=n, phones=[(PHONE, "mobile")]) for n in ("Ava", "Ben", "Cleo")]
    send_sms_webhook(client, body="STOP", sender=PHONE)
    planned = create_message(
        practice=practice,
        kind="broadcast",
        category="announcement",
        patient_ids=[k.pk for k in kids],
        content={"sms": "Closed Monday"},
    )
    assert {(d.status, d.reason) for d in planned.deliveries} == {("skipped", "sms_opted_out")}
    assert len(planned.deliveries) == 3


def test_an_opt_out_at_one_practice_does_not_stop_another(client, practice):
    other, _ = make_practice(name="Elm", number="+14155550900")
    send_sms_webhook(client, body="STOP", sender=PHONE)
    assert _opted_out(practice)
    assert not _opted_out(other)
