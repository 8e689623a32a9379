"""The current consent state is a projection of the ledger: rebuilt from the ledger alone, it equals the tables.

Every subject the ledger records is replayed: phones' SMS consent, emails'
subscription, Blocked Communications, and each patient's marketing consent
and do-not-contact flag.
"""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentry.consent import ledger
from consentry.consent import services as consent
from consentry.consent.models import EmailState, Source
from consentry.patients.models import Patient
from tests.conftest import make_patient, make_practice

pytestmark = pytest.mark.django_db

PHONES = ["+14155550111", "+14155550112", "+14155550113"]
EMAILS = ["ava@example.com", "ben@example.com"]
_numbers = itertools.count(100)

change = st.one_of(
    st.tuples(st.just("sms_out"), st.sampled_from(PHONES)),
    st.tuples(st.just("sms_in"), st.sampled_from(PHONES)),
    st.tuples(st.just("email"), st.sampled_from(EMAILS), st.sampled_from(list(EmailState))),
    st.tuples(st.just("block"), st.sampled_from(PHONES), st.lists(st.sampled_from(["recall", "survey"]), max_size=2)),
    st.tuples(st.just("marketing"), st.integers(0, 2), st.sampled_from(["yes", "no", "unknown"])),
    st.tuples(st.just("do_not_contact"), st.integers(0, 2), st.booleans()),
)


def _apply(practice, patients, step):
    kind, target, *value = step
    if kind == "sms_out":
        consent.record_sms_opt_out(practice=practice, number=target, source=Source.SMS_KEYWORD, actor=target)
    elif kind == "sms_in":
        consent.record_sms_opt_in(practice=practice, number=target, source=Source.SMS_KEYWORD, actor=target)
    elif kind == "email":
        consent.record_email_state(
            practice=practice, email=target, state=value[0], source=Source.ESP_WEBHOOK, actor="esp"
        )
    elif kind == "block":
        consent.set_block(practice=practice, number=target, categories=value[0], source=Source.STAFF, actor="staff")
    elif kind == "marketing":
        consent.set_marketing_consent(patient=patients[target], value=value[0], source=Source.PMS_SYNC, actor="pms")
    else:
        consent.set_do_not_contact(patient=patients[target], value=value[0], source=Source.STAFF, actor="staff")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(change, max_size=25))
def test_a_projection_rebuilt_from_the_ledger_equals_the_live_one_after_any_changes(db, steps):
    # A practice per example: the ledger keeps every example's events.
    practice, _ = make_practice(name="Oak Clinic", number=f"+1415555{next(_numbers):04d}")
    patients = [make_patient(practice, f"P{i}", phones=[(PHONES[i], "mobile")]) for i in range(3)]
    for step in steps:
        _apply(practice, patients, step)
    replayed, live = ledger.replay_projection(practice.pk), ledger.current_projection(practice.pk)
    assert replayed == live
    assert ledger.projection_matches(practice.pk) and ledger.verify_chain(practice.pk).ok


@pytest.mark.parametrize(
    "tamper",
    [
        {"do_not_contact": True},
        {"marketing_consent": "yes"},
    ],
)
def test_a_patient_flag_changed_behind_the_ledger_is_found(practice, tamper):
    patient = make_patient(practice, phones=[(PHONES[0], "mobile")])
    consent.set_marketing_consent(patient=patient, value="no", source=Source.PMS_SYNC, actor="pms")
    assert ledger.projection_matches(practice.pk)
    Patient.objects.filter(pk=patient.pk).update(**tamper)  # not through the ledger
    assert not ledger.projection_matches(practice.pk)


@pytest.mark.django_db
def test_settings_held_before_the_ledger_recorded_them_get_one_baseline_event():
    """A database from before notification settings were ledger events: the upgrade records them once."""
    practice = make_practice()[0]
    held = make_patient(practice, "Ava")
    plain = make_patient(practice, "Ben")
    # As an older version stored them: on the patient only, with no event.
    Patient.objects.filter(pk=held.pk).update(
        notification_overrides={"appointment_reminder": {"sms": False}}, channel_opt_outs=["voice"]
    )
    assert not ledger.projection_matches(practice.pk)
    assert ledger.record_notification_baselines() == 1
    assert ledger.projection_matches(practice.pk) and ledger.verify_chain(practice.pk).ok
    event = ledger.ConsentEvent.objects.get(subject="notifications", address=ledger.patient_subject(held.pk))
    assert event.source == "import" and "baseline" in event.evidence
    assert not ledger.ConsentEvent.objects.filter(address=ledger.patient_subject(plain.pk), subject="notifications")
    assert ledger.record_notification_baselines() == 0  # once
