"""The sandbox simulator page: threads per phone and inbox, replies handled as texts from the phone."""

import re
import uuid

import pytest
from django.test import Client
from django.utils.html import escape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentry.consent import ledger
from consentry.consent.models import ConsentEvent
from consentry.conversations.inbound import opt_in_confirmation, opt_out_confirmation
from consentry.keywords.models import InboundMessage
from consentry.providers.models import SandboxMessage
from tests.conftest import drain_worker, make_patient, make_practice

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"
ANCHOR = "phone-14155550111"


@pytest.fixture(autouse=True)
def demo_deployment(settings):
    """The sandbox's pages exist only in a demo deployment (see test_sandbox_off_in_production.py)."""
    settings.DEMO_MODE = True


def browser() -> Client:
    return Client(enforce_csrf_checks=True)


def column(html: str, anchor: str) -> str:
    """The HTML of one column of the board (a phone's thread or an inbox)."""
    start = html.index(f'id="{anchor}"')
    return html[start : html.index("</section>", start)]


def page(client: Client) -> str:
    response = client.get("/sandbox/")
    assert response.status_code == 200
    return response.content.decode()


def csrf_token(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def reply(client: Client, practice, body: str, sender: str = PHONE, form: str = ANCHOR):
    token = csrf_token(page(client))
    return client.post(
        "/sandbox/reply",
        {"csrfmiddlewaretoken": token, "form": form, "from": sender, "practice": str(practice.pk), "body": body},
    )


def opted_out(practice, number=PHONE) -> bool:
    return number in ledger.consent_state(practice.pk, [number]).sms_opted_out


def nothing_changed():
    return not InboundMessage.objects.exists() and not ConsentEvent.objects.filter(source="sms_keyword").exists()


def text(api, patient, body):
    response = api.post(
        "/messages",
        {"kind": "manual", "category": "document_shared", "patient_ids": [patient.pk.hex], "content": {"sms": body}},
    )
    assert response.status_code == 202, response.content
    drain_worker()


def test_texts_sent_to_a_phone_show_in_its_thread_with_the_practice_and_a_reply_form(api, practice):
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    text(api, patient, "Your forms are ready")
    thread = column(page(browser()), ANCHOR)
    assert "Your forms are ready" in thread and practice.name in thread
    assert "<time datetime=" in thread
    assert 'action="/sandbox/reply"' in thread and f'value="{PHONE}"' in thread
    assert f'<option value="{practice.pk}" selected>' in thread


def test_stop_typed_on_the_phone_opts_out_and_the_confirmation_arrives_in_its_thread(api, practice):
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    text(api, patient, "Your forms are ready")
    client = browser()

    response = reply(client, practice, "STOP")

    assert response.status_code == 303 and response["Location"] == f"/sandbox/#{ANCHOR}"
    assert opted_out(practice)
    assert ledger.address_status(practice.pk, PHONE).sms == "opted_out"
    event = ConsentEvent.objects.get(practice=practice, address=PHONE, source="sms_keyword")
    inbound = InboundMessage.objects.get()
    # A message id of the sandbox's own, recorded as evidence like a provider's.
    assert inbound.provider == "sandbox" and re.fullmatch(r"SB[0-9a-f]{32}", inbound.provider_ref)
    assert event.evidence["message_sid"] == inbound.provider_ref
    assert drain_worker() == 1  # the confirmation
    thread = column(page(client), ANCHOR)
    assert escape(opt_out_confirmation(practice)) in thread
    assert (
        thread.index("Your forms are ready")
        < thread.index(">STOP<")
        < thread.index(escape(opt_out_confirmation(practice)))
    )
    assert f"{practice.name}: opted out of texts" in thread
    assert "opt-out keyword" in thread


def test_start_typed_on_the_phone_opts_back_in(practice):
    client = browser()
    assert reply(client, practice, "STOP").status_code == 303
    drain_worker()
    assert reply(client, practice, "start").status_code == 303
    assert not opted_out(practice)
    assert ledger.address_status(practice.pk, PHONE).sms == "opted_in"
    drain_worker()
    thread = column(page(client), ANCHOR)
    assert escape(opt_in_confirmation(practice)) in thread
    assert f"{practice.name}: opted in to texts" in thread
    assert list(SandboxMessage.objects.filter(to=PHONE).values_list("body", flat=True)) == [
        opt_out_confirmation(practice),
        opt_in_confirmation(practice),
    ]


def test_a_reply_that_is_no_keyword_shows_in_the_thread_and_changes_no_consent(practice):
    client = browser()
    assert reply(client, practice, "Running 10 minutes late, sorry").status_code == 303
    drain_worker()
    thread = column(page(client), ANCHOR)
    assert "Running 10 minutes late, sorry" in thread and "This phone → Oak Clinic" in thread
    assert not opted_out(practice)
    assert not SandboxMessage.objects.exists()


def test_a_reply_flagged_as_a_possible_opt_out_is_marked_in_the_thread(practice):
    client = browser()
    assert reply(client, practice, "Thanks, see you Tuesday").status_code == 303
    assert reply(client, practice, "please stop texting me").status_code == 303
    assert reply(client, practice, "ok").status_code == 303
    thread = column(page(client), ANCHOR)
    assert thread.count("possible opt-out: staff to confirm") == 1
    mark = thread.index("possible opt-out: staff to confirm")  # in the flagged reply's header, before its text
    assert thread.index("Thanks, see you Tuesday") < mark < thread.index("please stop texting me")
    assert not opted_out(practice)  # the policy is flag: staff decide
    # Once staff dismiss the flag (or the phone texts STOP), the mark goes.
    reply(client, practice, "STOP")
    assert "possible opt-out" not in column(page(client), ANCHOR)


def test_a_new_number_can_text_the_practice_and_gets_its_own_column(practice):
    client = browser()
    response = reply(client, practice, "HELP", sender="(415) 555-0177", form="new")
    assert response.status_code == 303 and response["Location"] == "/sandbox/#phone-14155550177"
    drain_worker()
    thread = column(page(client), "phone-14155550177")
    assert "+14155550177" in thread and "HELP" in thread
    assert "Reply STOP to opt out" in thread  # the HELP answer, sent to the new number


def test_calls_show_in_the_phones_thread(api, practice):
    patient = make_patient(practice, phones=[("+14155550122", "landline")])
    response = api.post(
        "/messages",
        {
            "kind": "manual",
            "category": "document_shared",
            "patient_ids": [patient.pk.hex],
            "content": {"voice": "Your results are in"},
        },
    )
    assert response.status_code == 202, response.content
    drain_worker()
    thread = column(page(browser()), "phone-14155550122")
    assert "Your results are in" in thread and "call" in thread


def test_emails_show_in_their_inbox_with_the_html_part_in_a_sandboxed_frame(api, practice):
    patient = make_patient(practice, emails=["ava@example.com"])
    html = '<p>Hello <b>Ava</b></p><script>alert("x")</script>'
    response = api.post(
        "/messages",
        {
            "kind": "manual",
            "category": "document_shared",
            "patient_ids": [patient.pk.hex],
            "content": {"email": {"subject": "Forms & consent", "text": "Your forms are ready", "html": html}},
        },
    )
    assert response.status_code == 202, response.content
    drain_worker()
    sent = SandboxMessage.objects.get(channel="email")
    assert "<b>Ava</b>" in sent.html  # the sandbox keeps the HTML part it was handed
    full = page(browser())
    inbox = full[full.index('aria-label="Inbox ava@example.com"') :]
    inbox = inbox[: inbox.index("</section>")]
    assert "Forms &amp; consent" in inbox and "Your forms are ready" in inbox and practice.name in inbox
    frame = re.search(r'<iframe sandbox="" [^>]*srcdoc="([^"]*)"', inbox)
    assert frame, inbox
    assert escape(sent.html) == frame.group(1)  # the whole HTML part, as an attribute value
    assert "<b>Ava</b>" not in full and '<script>alert("x")' not in full


def test_a_broadcast_email_shows_its_unsubscribe_headers(api, practice):
    patient = make_patient(practice, emails=["ava@example.com"])
    response = api.post(
        "/messages",
        {
            "kind": "broadcast",
            "category": "announcement",
            "patient_ids": [patient.pk.hex],
            "content": {"email": {"subject": "Flu shots", "text": "Flu shots are in."}},
        },
    )
    assert response.status_code == 202, response.content
    drain_worker()
    headers = SandboxMessage.objects.get(channel="email").headers
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    full = page(browser())
    assert "<dt>List-Unsubscribe</dt>" in full and "List-Unsubscribe=One-Click" in full
    assert escape(headers["List-Unsubscribe"]) in full


def test_bodies_are_escaped(practice):
    client = browser()
    assert reply(client, practice, "<script>alert(1)</script> & <b>bold</b>").status_code == 303
    html = page(client)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in column(html, ANCHOR)
    assert "<script>alert(1)" not in html and "<b>bold</b>" not in html


def test_the_page_and_the_reply_are_404_unless_the_sandbox_is_the_default_provider(practice, settings):
    settings.CONSENTRY_PROVIDER = "twilio"
    client = browser()
    assert client.get("/sandbox/").status_code == 404
    response = client.post(
        "/sandbox/reply", {"form": ANCHOR, "from": PHONE, "practice": str(practice.pk), "body": "STOP"}
    )
    assert response.status_code == 404
    assert nothing_changed() and not opted_out(practice)


def test_a_reply_without_the_csrf_token_is_refused(practice):
    client = browser()
    page(client)
    response = client.post(
        "/sandbox/reply", {"form": ANCHOR, "from": PHONE, "practice": str(practice.pk), "body": "STOP"}
    )
    assert response.status_code == 403
    assert nothing_changed() and not opted_out(practice)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"body": ""}, "Write the text to send"),
        ({"body": "   \n "}, "Write the text to send"),
        ({"body": "x" * 1601}, "at most 1600 characters"),
        ({"body": "STOP\x00"}, "cannot contain"),
        ({"from": ""}, "a phone number is required"),
        ({"from": "not a phone"}, "not a phone number"),
        ({"from": "12"}, "not a phone number"),
        ({"practice": str(uuid.uuid4())}, "That practice does not exist"),
        ({"practice": "not-a-uuid"}, "Choose the practice"),
        ({"practice": ""}, "Choose the practice"),
    ],
)
def test_bad_replies_say_what_is_wrong_and_change_nothing(practice, change, message):
    client = browser()
    token = csrf_token(page(client))
    fields = {
        "csrfmiddlewaretoken": token,
        "form": ANCHOR,
        "from": PHONE,
        "practice": str(practice.pk),
        "body": "STOP",
        **change,
    }
    response = client.post("/sandbox/reply", fields)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    assert nothing_changed() and not opted_out(practice)


def test_a_reply_is_handled_as_a_text_from_the_phone_even_without_a_twilio_token(practice):
    # The sandbox hands the text to the inbound service itself: no signature to make, no token needed.
    practice.twilio_auth_token = ""
    practice.save()
    client = browser()
    assert reply(client, practice, "STOP").status_code == 303
    assert opted_out(practice)
    inbound = InboundMessage.objects.get()
    assert (inbound.provider, inbound.from_number, inbound.keyword) == ("sandbox", PHONE, "opt_out")


def test_a_practice_texting_through_twilio_is_not_offered_to_sandbox_phones(practice):
    other = make_practice(name="Elm Clinic", number="+14155550200")[0]
    other.sms_provider = "twilio"
    other.save()
    client = browser()
    html = page(client)
    assert str(practice.pk) in html and str(other.pk) not in html
    response = reply(client, other, "STOP")
    assert response.status_code == 400 and "through twilio" in response.content.decode()
    assert nothing_changed() and not opted_out(other)


def test_the_page_works_without_javascript_and_its_assets_are_served(practice):
    client = browser()
    html = page(client)
    assert '<form method="post" action="/sandbox/reply"' in html
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert client.get(asset).status_code == 200, asset
    assert "/static/sandbox/sandbox.css" in html and "htmx" in html
    assert 'hx-trigger="every 3s"' in html


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(st.sampled_from(["form", "from", "practice", "body", "other"]), st.text(max_size=40)))
def test_garbage_replies_never_500(practice, fields):
    client = Client()  # CSRF aside: whatever the fields, the answer is a redirect or a clear 400
    response = client.post("/sandbox/reply", fields)
    assert response.status_code in (303, 400)
