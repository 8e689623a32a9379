"""Encryption at rest: no plaintext in the database, and keys rotate without downtime."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from consentry.crypto import decrypt
from consentry.messaging.models import Message
from consentry.messaging.planning import create_message
from tests.conftest import make_patient

pytestmark = pytest.mark.django_db

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def _raw(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


def test_rotation_re_encrypts_everything_with_the_new_key(practice, settings):
    settings.ENCRYPTION_KEYS = [OLD]
    practice.twilio_auth_token = "secret-token"
    practice.save()
    patient = make_patient(practice, phones=[("+14155550111", "mobile")])
    create_message(
        practice=practice,
        kind="manual",
        category="recall",
        patient_ids=[patient.pk],
        content={"sms": "Your biopsy results are ready"},
    )
    [before] = _raw("SELECT content FROM messaging_message")
    assert "biopsy" not in before

    settings.ENCRYPTION_KEYS = [NEW, OLD]  # new key first; old still readable
    call_command("encryption", "rotate")
    settings.ENCRYPTION_KEYS = [NEW]  # the old key is gone
    [after] = _raw("SELECT content FROM messaging_message")
    assert after != before and "biopsy" not in after
    assert "biopsy" in decrypt(after)
    assert "biopsy" in Message.objects.get().content
    practice.refresh_from_db()
    assert practice.twilio_auth_token == "secret-token"


def test_a_missing_key_fails_loudly_instead_of_showing_ciphertext(practice, settings):
    settings.ENCRYPTION_KEYS = [OLD]
    practice.twilio_auth_token = "secret-token"
    practice.save()
    settings.ENCRYPTION_KEYS = [NEW]
    with pytest.raises(ValueError, match="cannot decrypt"):
        practice.refresh_from_db()
