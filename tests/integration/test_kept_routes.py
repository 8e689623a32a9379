"""The STOP webhook keeps each number's route (its practice, auth token and settings) between texts, and its one
insert stores the text only while that route is still the database's: a change made anywhere (another process,
the admin, a raw update, none of which this process hears of) counts from the next text.

Through the service's own WSGI application, as waitress and gunicorn call it.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consentry.keywords.classify import KeywordKind
from consentry.keywords.models import InboundMessage
from consentry.patients.models import Location, Practice, ReasonableMeans
from consentry.patients.practices import create_practice
from tests.conftest import TWILIO_TOKEN
from tests.integration import test_webhook_machine_path as machine_path

pytestmark = pytest.mark.django_db

http = machine_path.http  # the fixture: requests through consentry.wsgi.application
_form, _post_text = machine_path._form, machine_path._post_text

ROTATED = "a-rotated-token-0123456789abcdef"


def _kept(http, practice, to=None) -> None:
    """One text, so that the route of the number it went to is kept."""
    form = {**_form(practice, body="Thanks", sid="SM-first"), **({"To": to} if to else {})}
    assert _post_text(http, form).status_code == 200


def _stored(sid: str) -> InboundMessage | None:
    return InboundMessage.objects.filter(provider_ref=sid).first()


def test_with_its_route_kept_a_stop_is_one_statement(http, practice):
    _kept(http, practice)
    with CaptureQueriesContext(connection) as queries:
        assert _post_text(http, _form(practice, sid="SM2")).status_code == 200
    # No read of the practice: the insert alone (the test's transaction adds a savepoint around it and, on
    # PostgreSQL, the address's lock as a statement of its own, which outside a transaction is inside the insert).
    statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    assert [sql.split()[0] for sql in statements if not sql.startswith("SELECT pg_advisory_xact_lock(")] == ["INSERT"]
    assert _stored("SM2").asks_to_stop


def test_a_token_replaced_elsewhere_counts_from_the_next_text(http, practice):
    _kept(http, practice)
    Practice.objects.filter(pk=practice.pk).update(twilio_auth_token=ROTATED)  # no save(), no signal
    old = _post_text(http, _form(practice, sid="SM2"))
    assert old.status_code == 403 and _stored("SM2") is None
    new = _post_text(http, _form(practice, sid="SM3"), token=ROTATED)
    assert new.status_code == 200 and _stored("SM3").asks_to_stop


def test_a_setting_changed_elsewhere_counts_from_the_next_text(http, practice):
    assert practice.reasonable_means == ReasonableMeans.FLAG
    _kept(http, practice)
    Practice.objects.filter(pk=practice.pk).update(reasonable_means=ReasonableMeans.AUTO)
    assert _post_text(http, _form(practice, body="please stop texting me", sid="SM2")).status_code == 200
    assert _stored("SM2").asks_to_stop  # read under "auto", the practice's setting now

    Practice.objects.filter(pk=practice.pk).update(keyword_languages=["es"])
    assert _post_text(http, _form(practice, body="PARAR", sid="SM3", sender="+14155550112")).status_code == 200
    stop = _stored("SM3")
    assert stop.keyword == KeywordKind.OPT_OUT and stop.asks_to_stop


def test_a_number_given_to_another_practice_takes_its_texts_and_its_token(http, practice):
    number = practice.texting_number
    _kept(http, practice)
    Practice.objects.filter(pk=practice.pk).update(texting_number="+14155550199")
    elm, _ = create_practice(name="Elm Clinic", texting_number=number, twilio_auth_token=ROTATED)

    signed_by_oak = _post_text(http, _form(practice, sid="SM2"))
    assert signed_by_oak.status_code == 403 and _stored("SM2") is None
    signed_by_elm = _post_text(http, _form(practice, sid="SM3"), token=ROTATED)
    assert signed_by_elm.status_code == 200 and _stored("SM3").practice_id == elm.pk


def test_a_locations_number_removed_elsewhere_takes_no_more_texts(http, practice):
    north = Location.objects.create(
        practice=practice, name="North", texting_number="+14155550160", timezone="America/New_York"
    )
    _kept(http, practice, to=north.texting_number)
    assert _post_text(http, {**_form(practice, sid="SM2"), "To": north.texting_number}).status_code == 200
    Location.objects.filter(pk=north.pk).delete()
    gone = _post_text(http, {**_form(practice, sid="SM3"), "To": north.texting_number})
    assert gone.status_code == 403 and _stored("SM3") is None


def test_a_route_changing_under_every_try_is_503_and_stores_nothing(http, practice):
    _kept(http, practice)
    inserts = []

    def changed_before_each_insert(execute, sql, params, many, context):
        # As if another process changed the region between each read of the route and its insert. (In the test's
        # transaction the change is made in the insert's savepoint, and undone with it: each try reads "US".)
        if sql.startswith(f'INSERT INTO "{InboundMessage._meta.db_table}"'):
            inserts.append(sql)
            Practice.objects.filter(pk=practice.pk).update(region="CA")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(changed_before_each_insert):
        answer = _post_text(http, _form(practice, sid="SM2"))
    assert answer.status_code == 503 and len(inserts) == 3 and _stored("SM2") is None
    # Twilio's retry of the same text, once the settings hold still: stored once.
    assert _post_text(http, _form(practice, sid="SM2")).status_code == 200
    assert InboundMessage.objects.filter(provider_ref="SM2").count() == 1


def test_a_kept_route_still_refuses_what_does_not_verify(http, practice):
    _kept(http, practice)
    forged = _post_text(http, _form(practice, sid="SM2"), token="someone-elses-token")
    assert forged.status_code == 403 and _stored("SM2") is None
    assert _post_text(http, _form(practice, sid="SM3"), token=TWILIO_TOKEN).status_code == 200
