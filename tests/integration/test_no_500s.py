"""Whatever arrives, the answer is never a 500: random bodies against every write endpoint."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import send_sms_webhook

pytestmark = pytest.mark.django_db

# Any text, and text with lone surrogates and control characters, which JSON can carry and nothing can store.
texts = st.text(max_size=30) | st.text(st.characters(categories=["Cs", "Cc", "L", "N", "P", "Z"]), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
PATIENT_KEYS = [
    "first_name",
    "last_name",
    "phones",
    "emails",
    "preferred_phone",
    "do_not_contact",
    "marketing_consent",
    "timezone",
    "external_id",
    "notification_overrides",
    "channel_opt_outs",
]
MESSAGE_KEYS = ["kind", "category", "patient_ids", "content"]


def _bodies(keys):
    return st.one_of(json_values, st.dictionaries(st.sampled_from(keys), json_values, max_size=len(keys)))


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=_bodies(PATIENT_KEYS))
def test_random_patient_bodies_never_500(api, body):
    assert api.post("/patients", body).status_code in (201, 400, 422)


@FUZZ
@given(body=_bodies(MESSAGE_KEYS))
def test_random_message_bodies_never_500(api, body):
    assert api.post("/messages", body).status_code in (202, 400, 422)


@FUZZ
@given(body=_bodies(["number", "categories"]))
def test_random_block_bodies_never_500(api, body):
    assert api.post("/blocks", body).status_code in (201, 400, 422)


@FUZZ
@given(address=st.text(max_size=40))
def test_random_status_lookups_never_500(api, address):
    assert api.get("/contacts/status", address=address).status_code in (200, 422)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_random_bytes_never_500(api, raw):
    response = api.client.post("/api/v1/messages", raw, content_type="application/json")
    assert response.status_code in (400, 422)


@FUZZ
@given(sender=st.text(max_size=25), body=st.text(max_size=200), sid=st.text(min_size=1, max_size=40))
def test_random_signed_webhooks_never_500(client, practice, sender, body, sid):
    # Form encoding cannot carry NUL; Twilio never sends it either.
    sender, body, sid = (v.replace("\x00", "") for v in (sender, body, sid))
    response = send_sms_webhook(client, body=body, sender=sender, sid=sid or "SMx")
    assert response.status_code in (200, 400)


def test_an_email_longer_than_any_mailbox_is_a_422_not_a_database_error(api):
    response = api.post("/patients", {"first_name": "A", "emails": ["a" * 300 + "@example.com"]})
    assert response.status_code == 422 and response.json()["error"]["field"] == "emails[0]"


def test_an_overlong_message_sid_is_a_400(client, practice):
    assert send_sms_webhook(client, body="STOP", sender="+14155550111", sid="SM" + "x" * 100).status_code == 400


def test_emoji_and_unicode_bodies_are_kept(client, practice):
    from consentry.keywords.models import InboundMessage

    assert send_sms_webhook(client, body="Thanks 🙏 — à bientôt", sender="+14155550111").status_code == 200
    assert InboundMessage.objects.get().body == "Thanks 🙏 — à bientôt"


@FUZZ
@given(raw=st.binary(max_size=120))
def test_signed_webhooks_with_any_bytes_in_the_body_never_500(client, practice, raw):
    """Bytes that are not UTF-8, or percent-encode a surrogate: decoded as Django decodes them, signed so."""
    from urllib.parse import quote_from_bytes

    from django.http import QueryDict

    from tests.conftest import twilio_signature

    body = (
        f"From=%2B14155550111&To=%2B14155550100&MessageSid=SMraw&AccountSid=AC1&Body={quote_from_bytes(raw)}"
        "&Extra=%ED%BF%BF"
    )
    params = QueryDict(body).dict()  # what the view will see and check the signature against
    signature = twilio_signature("http://testserver/webhooks/twilio/sms", params)
    response = client.post(
        "/webhooks/twilio/sms",
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )
    assert response.status_code in (200, 400)
