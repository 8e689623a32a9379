"""In-app notices stored for the portal, and Web Push to the patient's browsers.

The push service is a real one on loopback (tests/fakes/push.py): it checks the
VAPID signature and decrypts each push with the key pair and auth secret the
test's "browser" generated, as a browser's push service and the browser would.
"""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from consentry.messaging.models import Delivery
from consentry.providers.models import InAppNotice, PushSubscription, SandboxMessage
from tests.conftest import Api, drain_worker, make_patient, make_practice
from tests.fakes.push import b64url, start_fake_push

pytestmark = pytest.mark.django_db


@pytest.fixture
def vapid_key():
    return ec.generate_private_key(ec.SECP256R1())


def _public(key: ec.EllipticCurvePrivateKey) -> str:
    return b64url(
        key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )


@pytest.fixture
def push_service(settings, vapid_key):
    """The push service, and push configured: this VAPID key (as a PEM), a subject, loopback endpoints allowed."""
    settings.CONSENTRY_VAPID_PRIVATE_KEY = vapid_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    settings.CONSENTRY_VAPID_SUBJECT = "mailto:admin@example.org"
    settings.CONSENTRY_PUSH_ALLOW_LOOPBACK = True
    fake, server = start_fake_push(_public(vapid_key))
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def patient(practice):
    return make_patient(practice, first_name="Ava")


def _subscribe(api, patient, browser):
    response = api.post(f"/patients/{patient.pk}/push-subscriptions", browser.subscription())
    assert response.status_code == 201, response.content
    return response.json()


def _notify(api, patient, text="Dr. Lee replied to your question", subject="New message from your care team"):
    content = {"in_app": text}
    if subject:
        content["email"] = {"subject": subject, "text": text}
    response = api.post(
        "/messages",
        {"kind": "notification", "category": "message_received", "patient_ids": [str(patient.pk)], "content": content},
    )
    assert response.status_code == 202, response.content
    return response.json()


def _in_app_status():
    return list(Delivery.objects.filter(channel="in_app").values_list("status", flat=True))


# --- delivery ------------------------------------------------------------------------


def test_a_notification_is_stored_for_the_portal_and_pushed_encrypted_to_the_browser(api, patient, push_service):
    browser = push_service.subscribe()
    _subscribe(api, patient, browser)

    _notify(api, patient)
    drain_worker()

    assert _in_app_status() == ["delivered"]
    notice = InAppNotice.objects.get()
    assert (notice.patient_id, notice.category, notice.subject, notice.body, notice.read_at) == (
        patient.pk,
        "message_received",
        "New message from your care team",
        "Dr. Lee replied to your question",
        None,
    )
    assert notice.delivery_id == Delivery.objects.get(channel="in_app").pk
    assert not SandboxMessage.objects.filter(channel="in_app").exists()
    # Signed with our VAPID key, encrypted for this browser alone, decrypted by it.
    assert push_service.rejections == []
    assert push_service.payloads(browser) == [
        {"title": "Oak Clinic", "body": "New message from your care team", "url": "/portal/"}
    ]
    raw = push_service.requests[0]["body"]
    assert b"care team" not in raw and b"Oak Clinic" not in raw
    assert int(push_service.requests[0]["headers"]["ttl"]) > 0
    assert PushSubscription.objects.get().last_error == ""


def test_without_a_subject_the_push_carries_the_first_120_characters(api, patient, push_service):
    browser = push_service.subscribe()
    _subscribe(api, patient, browser)
    text = "Your statement is ready. " * 10 + "Sign in to read it."

    _notify(api, patient, text=text, subject="")
    drain_worker()

    assert push_service.payloads(browser) == [{"title": "Oak Clinic", "body": text[:120], "url": "/portal/"}]
    assert InAppNotice.objects.get().body == text  # the portal keeps the whole notice


def test_every_browser_of_the_patient_gets_the_push_and_no_other_patient_does(api, practice, patient, push_service):
    laptop, phone = push_service.subscribe(), push_service.subscribe()
    other = make_patient(practice, first_name="Ben")
    elsewhere = push_service.subscribe()
    for browser in (laptop, phone):
        _subscribe(api, patient, browser)
    _subscribe(api, other, elsewhere)

    _notify(api, patient)
    drain_worker()

    assert len(push_service.payloads(laptop)) == len(push_service.payloads(phone)) == 1
    assert push_service.payloads(elsewhere) == []
    assert list(InAppNotice.objects.values_list("patient_id", flat=True)) == [patient.pk]


def test_a_gone_subscription_is_deleted_and_the_notice_is_still_delivered(api, patient, push_service):
    gone, kept = push_service.subscribe(), push_service.subscribe()
    _subscribe(api, patient, gone)
    _subscribe(api, patient, kept)
    push_service.answers[gone.path] = 410

    _notify(api, patient)
    drain_worker()

    assert _in_app_status() == ["delivered"]
    assert InAppNotice.objects.count() == 1
    assert list(PushSubscription.objects.values_list("endpoint", flat=True)) == [kept.endpoint]
    assert [r["path"] for r in push_service.requests].count(gone.path) == 1
    assert len(push_service.payloads(kept)) == 1


def test_a_404_from_the_push_service_also_means_gone(api, patient, push_service):
    browser = push_service.subscribe()
    _subscribe(api, patient, browser)
    push_service.answers[browser.path] = 404

    _notify(api, patient)
    drain_worker()

    assert _in_app_status() == ["delivered"]
    assert not PushSubscription.objects.exists()


def test_a_push_service_error_is_recorded_on_the_subscription_and_cleared_by_the_next_success(
    api, patient, push_service
):
    browser = push_service.subscribe()
    _subscribe(api, patient, browser)
    push_service.answers[browser.path] = 500

    _notify(api, patient)
    drain_worker()

    assert _in_app_status() == ["delivered"]
    subscription = PushSubscription.objects.get()
    assert subscription.last_error.startswith("500 ")
    assert api.get(f"/patients/{patient.pk}/push-subscriptions").json()[0]["last_error"] == subscription.last_error

    del push_service.answers[browser.path]
    _notify(api, patient, subject="Second message")
    drain_worker()

    assert _in_app_status() == ["delivered", "delivered"]
    assert PushSubscription.objects.get().last_error == ""
    assert [p["body"] for p in push_service.payloads(browser)] == ["Second message"]


def test_an_unreachable_push_service_is_recorded_too(api, patient, push_service):
    browser = push_service.subscribe()
    _subscribe(api, patient, browser)
    # A port nobody listens on: the connection is refused.
    PushSubscription.objects.update(endpoint="http://127.0.0.1:9/push/v1/nobody")

    _notify(api, patient)
    drain_worker()

    assert _in_app_status() == ["delivered"]
    assert "ConnectionError" in PushSubscription.objects.get().last_error


def test_an_endpoint_whose_name_resolves_to_this_machine_is_never_pushed_to(api, patient, push_service):
    import socket
    from urllib.parse import urlsplit

    browser = push_service.subscribe()
    _subscribe(api, patient, browser)
    # The push service's own port, by a name (this machine's) instead of 127.0.0.1: a name that
    # looks like the internet when subscribing and leads here when pushing.
    name = socket.gethostname()
    PushSubscription.objects.update(endpoint=f"https://{name}:{urlsplit(push_service.url).port}{browser.path}")

    _notify(api, patient)
    drain_worker()

    assert _in_app_status() == ["delivered"]
    error = PushSubscription.objects.get().last_error
    assert error.startswith(f"not pushed: {name} ") and ("not to the internet" in error or "cannot resolve" in error)
    assert push_service.requests == []


def test_a_name_that_answers_differently_when_connecting_still_never_leads_here(
    api, patient, push_service, monkeypatch
):
    """DNS rebinding: the endpoint's name first resolves to an internet address, then to this machine.
    The name is resolved once and the checked address is the one connected to."""
    import socket
    from urllib.parse import urlsplit

    real_getaddrinfo = socket.getaddrinfo
    port = urlsplit(push_service.url).port
    lookups = []

    def resolver(host, *args, **kwargs):
        if host == "push.rebind.test":
            lookups.append(host)
            address = "1.1.1.1" if len(lookups) == 1 else "127.0.0.1"  # the second answer leads here
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]
        if host == "1.1.1.1":  # the internet, unreachable from this test: a dead end on loopback
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.2", port))]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    browser = push_service.subscribe()
    _subscribe(api, patient, browser)
    PushSubscription.objects.update(endpoint=f"https://push.rebind.test:{port}{browser.path}")

    _notify(api, patient)
    drain_worker()

    assert push_service.server.connections == 0 and push_service.requests == []
    assert lookups == ["push.rebind.test"]
    assert "ConnectionError" in PushSubscription.objects.get().last_error  # 1.1.1.1 did not answer


def test_a_redirect_from_the_push_service_is_not_followed(api, patient, push_service):
    redirected, elsewhere = push_service.subscribe(), push_service.subscribe()
    _subscribe(api, patient, redirected)
    push_service.redirects[redirected.path] = push_service.url + elsewhere.path

    _notify(api, patient)
    drain_worker()

    assert _in_app_status() == ["delivered"]
    assert "TooManyRedirects" in PushSubscription.objects.get().last_error
    assert push_service.requests == []  # the push went nowhere after the redirect


def test_a_push_signed_with_another_key_is_refused_by_the_push_service_and_recorded(
    api, patient, push_service, settings
):
    browser = push_service.subscribe()
    _subscribe(api, patient, browser)
    settings.CONSENTRY_VAPID_PRIVATE_KEY = b64url(os.urandom(31) + b"\x01")  # not the key browsers subscribed with

    _notify(api, patient)
    drain_worker()

    assert _in_app_status() == ["delivered"]
    assert push_service.rejections == [(browser.path, "k is not the application server key")]
    assert push_service.payloads(browser) == []
    assert PushSubscription.objects.get().last_error.startswith("401 ")


def test_without_a_vapid_key_the_notice_is_stored_and_no_push_is_attempted(api, patient, push_service, settings):
    browser = push_service.subscribe()
    _subscribe(api, patient, browser)
    settings.CONSENTRY_VAPID_PRIVATE_KEY = ""

    _notify(api, patient)
    drain_worker()

    assert _in_app_status() == ["delivered"]
    assert InAppNotice.objects.count() == 1
    assert push_service.requests == []
    assert PushSubscription.objects.get().last_error == ""
    assert api.get("/push/public-key").json() == {"enabled": False, "public_key": None}


def test_the_vapid_key_may_be_given_raw_in_base64url(api, patient, push_service, settings, vapid_key):
    settings.CONSENTRY_VAPID_PRIVATE_KEY = b64url(vapid_key.private_numbers().private_value.to_bytes(32, "big"))
    browser = push_service.subscribe()
    _subscribe(api, patient, browser)

    _notify(api, patient)
    drain_worker()

    assert push_service.rejections == []
    assert len(push_service.payloads(browser)) == 1


def test_the_vapid_key_may_be_given_as_a_pem_files_path(api, patient, push_service, settings, tmp_path):
    pem = tmp_path / "private_key.pem"
    pem.write_text(settings.CONSENTRY_VAPID_PRIVATE_KEY)
    settings.CONSENTRY_VAPID_PRIVATE_KEY = str(pem)
    browser = push_service.subscribe()
    _subscribe(api, patient, browser)

    _notify(api, patient)
    drain_worker()

    assert push_service.rejections == []
    assert len(push_service.payloads(browser)) == 1


def test_the_public_key_browsers_subscribe_with(api, push_service, vapid_key):
    assert api.get("/push/public-key").json() == {"enabled": True, "public_key": _public(vapid_key)}


# --- the API -------------------------------------------------------------------------


def test_registering_a_subscription_is_idempotent_on_its_endpoint(api, patient, push_service):
    browser = push_service.subscribe()
    first = _subscribe(api, patient, browser)
    again = _subscribe(api, patient, browser)

    assert first["id"] == again["id"]
    assert first["endpoint"] == browser.endpoint and first["last_error"] == ""
    assert PushSubscription.objects.count() == 1
    listed = api.get(f"/patients/{patient.pk}/push-subscriptions")
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()] == [first["id"]]


def test_new_keys_for_a_known_endpoint_replace_the_old_ones(api, patient, push_service):
    browser = push_service.subscribe()
    _subscribe(api, patient, browser)
    browser.private_key, browser.auth_secret = ec.generate_private_key(ec.SECP256R1()), os.urandom(16)
    _subscribe(api, patient, browser)

    _notify(api, patient)
    drain_worker()

    assert push_service.rejections == []  # encrypted with the new keys, which the browser now holds
    assert len(push_service.payloads(browser)) == 1


def test_a_subscription_can_be_deleted(api, patient, push_service):
    created = _subscribe(api, patient, push_service.subscribe())
    path = f"/patients/{patient.pk}/push-subscriptions/{created['id']}"

    assert api.delete(path).status_code == 204
    assert not PushSubscription.objects.exists()
    assert api.delete(path).status_code == 404
    assert api.delete(f"/patients/{patient.pk}/push-subscriptions/x1").status_code == 404
    assert api.delete(f"/patients/{patient.pk}/push-subscriptions/{'9' * 40}").status_code == 404


def _valid_keys():
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return {"p256dh": b64url(point), "auth": b64url(os.urandom(16))}


def _not_on_the_curve() -> str:
    return b64url(b"\x04" + b"\x01" * 64)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"endpoint": "http://push.example.com/v1/abc"}, "endpoint"),
        ({"endpoint": "ftp://push.example.com/v1/abc"}, "endpoint"),
        ({"endpoint": "not a url"}, "endpoint"),
        ({"endpoint": "https://10.0.0.7/v1/abc"}, "endpoint"),
        ({"endpoint": "https://localhost/v1/abc"}, "endpoint"),
        ({"endpoint": "https://user:secret@push.example.com/v1/abc"}, "endpoint"),
        ({"keys": {"p256dh": b64url(b"\x04" + os.urandom(63)), "auth": b64url(os.urandom(16))}}, "keys.p256dh"),
        ({"keys": {"p256dh": "BAAA+/==", "auth": b64url(os.urandom(16))}}, "keys.p256dh"),
        ({"keys": {"p256dh": _not_on_the_curve(), "auth": b64url(os.urandom(16))}}, "keys.p256dh"),
        ({"keys": {**_valid_keys(), "auth": b64url(os.urandom(15))}}, "keys.auth"),
        ({"keys": {**_valid_keys(), "auth": "not base64!"}}, "keys.auth"),
    ],
)
def test_a_bad_subscription_is_refused_with_its_field_and_nothing_is_stored(api, patient, change, field):
    body = {"endpoint": "https://push.example.com/v1/abc", "keys": _valid_keys(), **change}
    response = api.post(f"/patients/{patient.pk}/push-subscriptions", body)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["field"] == field
    assert not PushSubscription.objects.exists()


def test_a_subscription_without_keys_is_refused(api, patient):
    response = api.post(f"/patients/{patient.pk}/push-subscriptions", {"endpoint": "https://push.example.com/v1/a"})
    assert response.status_code == 422
    assert response.json()["error"]["field"].split(".")[-1] == "keys"
    assert not PushSubscription.objects.exists()


def test_a_loopback_http_endpoint_needs_the_setting(api, patient, settings):
    body = {"endpoint": "http://127.0.0.1:8123/push/v1/a", "keys": _valid_keys()}
    settings.CONSENTRY_PUSH_ALLOW_LOOPBACK = False
    refused = api.post(f"/patients/{patient.pk}/push-subscriptions", body)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "endpoint"
    assert not PushSubscription.objects.exists()

    settings.CONSENTRY_PUSH_ALLOW_LOOPBACK = True
    assert api.post(f"/patients/{patient.pk}/push-subscriptions", body).status_code == 201


def test_a_well_formed_https_endpoint_with_standard_padding_is_accepted_and_normalized(api, patient):
    keys = _valid_keys()
    padded = {"p256dh": keys["p256dh"] + "=", "auth": keys["auth"] + "=="}
    response = api.post(
        f"/patients/{patient.pk}/push-subscriptions",
        {"endpoint": "https://fcm.googleapis.com/fcm/send/abc:def", "keys": padded},
    )
    assert response.status_code == 201, response.content
    assert PushSubscription.objects.values_list("p256dh", "auth").get() == (keys["p256dh"], keys["auth"])


def test_a_patient_has_at_most_twenty_subscriptions(api, patient):
    for i in range(20):
        body = {"endpoint": f"https://push.example.com/v1/{i}", "keys": _valid_keys()}
        assert api.post(f"/patients/{patient.pk}/push-subscriptions", body).status_code == 201
    refused = api.post(
        f"/patients/{patient.pk}/push-subscriptions",
        {"endpoint": "https://push.example.com/v1/20", "keys": _valid_keys()},
    )
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "endpoint"
    assert PushSubscription.objects.count() == 20
    # A known endpoint is still welcome (its keys are refreshed).
    again = {"endpoint": "https://push.example.com/v1/3", "keys": _valid_keys()}
    assert api.post(f"/patients/{patient.pk}/push-subscriptions", again).status_code == 201


def test_another_practices_patient_is_not_found_and_nothing_changes(api, patient, push_service):
    _, other_key = make_practice(name="Elm Clinic", number="+14155550199")
    other = Api(other_key)
    subscription = _subscribe(api, patient, push_service.subscribe())
    _notify(api, patient)
    drain_worker()
    base = f"/patients/{patient.pk}"

    body = {"endpoint": "https://push.example.com/v1/x", "keys": _valid_keys()}
    assert other.post(f"{base}/push-subscriptions", body).status_code == 404
    assert other.get(f"{base}/push-subscriptions").status_code == 404
    assert other.delete(f"{base}/push-subscriptions/{subscription['id']}").status_code == 404
    assert other.get(f"{base}/notices").status_code == 404
    assert api.post("/patients/not-a-uuid/push-subscriptions", body).status_code == 404
    assert PushSubscription.objects.count() == 1


def test_notices_are_listed_newest_first(api, patient):
    for n in range(3):
        _notify(api, patient, text=f"Notice {n}", subject=f"Subject {n}")
        drain_worker()

    response = api.get(f"/patients/{patient.pk}/notices")
    assert response.status_code == 200
    notices = response.json()
    assert [(n["subject"], n["body"], n["category"], n["read_at"]) for n in notices] == [
        (f"Subject {n}", f"Notice {n}", "message_received", None) for n in (2, 1, 0)
    ]
    assert [n["created_at"] for n in notices] == sorted((n["created_at"] for n in notices), reverse=True)
    page = api.get(f"/patients/{patient.pk}/notices", limit=1, offset=1).json()
    assert [n["body"] for n in page] == ["Notice 1"]
    assert api.get(f"/patients/{patient.pk}/notices", limit=0).status_code == 422


def test_notice_bodies_are_encrypted_at_rest(api, patient):
    from django.db import connection

    _notify(api, patient, text="Your biopsy results are in", subject="Results available")
    drain_worker()

    with connection.cursor() as cursor:
        cursor.execute("SELECT subject, body FROM providers_inappnotice")
        stored = cursor.fetchone()
    assert "biopsy" not in stored[1] and "Results" not in stored[0]
    assert base64.urlsafe_b64decode(stored[1])  # a Fernet token


_key_text = st.text(max_size=100) | st.binary(min_size=0, max_size=70).map(b64url)


@hypothesis_settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    endpoint=st.text(max_size=60)
    | st.text(max_size=40).map(lambda t: "https://push.example.com/" + t)
    | st.text(max_size=30).map(lambda t: "https://" + t),
    p256dh=_key_text,
    auth=_key_text,
)
def test_random_subscriptions_never_500_and_a_refusal_stores_nothing(api, patient, endpoint, p256dh, auth):
    before = PushSubscription.objects.count()
    response = api.post(
        f"/patients/{patient.pk}/push-subscriptions", {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}
    )
    assert response.status_code in (201, 422)
    if response.status_code == 422:
        assert PushSubscription.objects.count() == before
