"""Planning a large audience a chunk at a time: the answer counts what it cannot list, the URL it gives
pages through every delivery, every delivery that goes is queued exactly once, and a plan that fails
in a late chunk stores and queues nothing.

Some tests make the planner's chunks small (``PLAN_CHUNK``, rows per insert, deliveries per dispatch
task) so that a few dozen patients cross many chunk boundaries; the limit of the inline list is the
real one (1,000), crossed with real patients.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from django_tasks_db.models import DBTaskResult

from consentry.consent import services as consent
from consentry.consent.models import Source
from consentry.errors import InvalidInput
from consentry.messaging import planning
from consentry.messaging.models import Delivery, Message
from consentry.messaging.planning import INLINE_DELIVERIES, Unacknowledged, create_message, preview_message
from consentry.messaging.recipients import EVERY_PATIENT
from consentry.messaging.tasks import enqueue_dispatch
from consentry.patients.models import Patient
from tests.conftest import Api, make_patient, make_practice

pytestmark = pytest.mark.django_db

CONTENT = {"sms": "Time for a check-up", "voice": "It is time for a check-up", "email": {"subject": "S", "text": "T"}}


def _landline_patients(practice, n: int, start: int = 0) -> list[str]:
    """Patients with a landline and an email: a broadcast skips the text and calls (two deliveries each)."""
    return [
        str(
            make_patient(
                practice,
                first_name=f"P{i}",
                phones=[(f"+1617{200 + i // 1000:03d}{i % 1000:04d}", "landline")],
                emails=[f"p{i}@example.com"],
            ).pk
        )
        for i in range(start, start + n)
    ]


def _mixed_patients(practice) -> list[str]:
    """A few dozen patients whose broadcast deliveries differ: texts, calls, emails, opt-outs, nothing."""
    ids = []
    for i in range(40):
        phones, emails = [], []
        if i % 4 != 3:
            phones.append((f"+1415{300 + i:03d}0{i:03d}", "landline" if i % 4 == 1 else "mobile"))
        if i % 2 == 0:
            emails.append(f"m{i}@example.com")
        ids.append(str(make_patient(practice, first_name=f"M{i}", phones=phones, emails=emails).pk))
    consent.record_sms_opt_out(practice=practice, number="+14153000000", source=Source.SMS_KEYWORD, actor="x")
    return ids


@pytest.fixture
def small_chunks(monkeypatch, settings):
    monkeypatch.setattr(planning, "PLAN_CHUNK", 7)
    monkeypatch.setattr(planning._DeliveryWriter, "ROWS", 3)
    settings.CONSENTRY_DISPATCH_BATCH = 4


def _queued_ids() -> list[int]:
    """Every delivery id the dispatch tasks carry, as many times as they carry it."""
    return [pk for task in DBTaskResult.objects.all() for pk in task.args_kwargs["args"][0]]


def _rows(message) -> list[tuple]:
    return list(
        Delivery.objects.filter(message=message)
        .order_by("pk")
        .values_list("patient_id", "channel", "address", "status", "reason")
    )


def test_a_broadcast_larger_than_the_inline_limit_answers_counts_and_a_url_that_pages_through_every_one(
    practice_and_key,
):
    practice, key = practice_and_key
    api = Api(key)
    ids = _landline_patients(practice, INLINE_DELIVERIES // 2 + 5)  # two deliveries each
    answer = api.post("/messages", {"kind": "broadcast", "category": "recall", "patient_ids": ids, "content": CONTENT})
    assert answer.status_code == 202, answer.content
    body = answer.json()
    message = Message.objects.get(pk=body["id"])
    stored = Delivery.objects.filter(message=message)
    total = 2 * len(ids)
    assert stored.count() == total
    assert body["deliveries_truncated"] is True
    assert len(body["deliveries"]) == INLINE_DELIVERIES
    assert body["report"] == {
        "total": total,
        "by_status": {
            **{status: 0 for status in body["report"]["by_status"]},
            "pending": len(ids),
            "skipped": len(ids),
        },
        "by_reason": {"no_text_capable_phone": len(ids)},
        "by_channel": {"sms": len(ids), "voice": len(ids)},
    }

    # The URL pages through every delivery, in plan order; the inline list is its beginning.
    assert body["deliveries_url"] == f"http://testserver/api/v1/messages/{message.pk}/deliveries"
    paged, cursor, pages = [], "", 0
    while True:
        page = api.get(f"/messages/{message.pk}/deliveries", **({"cursor": cursor} if cursor else {})).json()
        paged += page["deliveries"]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3  # 500 a page
    assert paged[:INLINE_DELIVERIES] == body["deliveries"]
    assert [(d["patient_id"], d["channel"], d["address"] or "", d["status"], d["reason"] or "") for d in paged] == [
        (str(p), c, a, s, r) for p, c, a, s, r in _rows(message)
    ]

    # Every call is queued exactly once, nothing else is.
    pending = set(stored.filter(status="pending").values_list("pk", flat=True))
    queued = _queued_ids()
    assert len(queued) == len(set(queued)) and set(queued) == pending

    # Reading the message back answers the same way; so does the same request sent again.
    assert {k: v for k, v in api.get(f"/messages/{message.pk}").json().items() if k != "warnings"} == {
        k: v for k, v in body.items() if k != "warnings"
    }


def test_a_small_message_lists_every_delivery_and_says_it_is_complete(api, practice):
    [patient] = _landline_patients(practice, 1)
    body = api.post(
        "/messages", {"kind": "broadcast", "category": "recall", "patient_ids": [patient], "content": CONTENT}
    ).json()
    assert body["deliveries_truncated"] is False
    assert [(d["channel"], d["status"]) for d in body["deliveries"]] == [("sms", "skipped"), ("voice", "pending")]
    assert body["report"]["total"] == 2
    page = api.get(f"/messages/{body['id']}/deliveries", limit=1).json()
    assert page["deliveries"] == body["deliveries"][:1] and page["next_cursor"]
    rest = api.get(f"/messages/{body['id']}/deliveries", limit=1, cursor=page["next_cursor"]).json()
    assert rest == {"deliveries": body["deliveries"][1:], "next_cursor": None}


def test_a_cursor_the_api_did_not_give_is_a_422_and_another_practices_message_a_404(api, practice):
    [patient] = _landline_patients(practice, 1)
    body = api.post(
        "/messages", {"kind": "broadcast", "category": "recall", "patient_ids": [patient], "content": CONTENT}
    ).json()
    for cursor in ("not-a-cursor", "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "LTE"):  # junk, 10**27, -1
        answer = api.get(f"/messages/{body['id']}/deliveries", cursor=cursor)
        assert answer.status_code == 422, (cursor, answer.content)
        assert answer.json()["error"]["field"] == "cursor"
    other = Api(make_practice(name="Elm Clinic", number="+14155550199")[1])
    assert other.get(f"/messages/{body['id']}/deliveries").status_code == 404


def test_every_patient_is_planned_as_the_list_of_them_all_is_across_chunks(practice, small_chunks):
    ids = _mixed_patients(practice)
    by_list = create_message(practice=practice, kind="broadcast", category="recall", patient_ids=ids, content=CONTENT)
    everyone = create_message(
        practice=practice, kind="broadcast", category="recall", patient_ids=EVERY_PATIENT, content=CONTENT
    )
    assert sorted(_rows(by_list.message)) == sorted(_rows(everyone.message))
    assert by_list.report == everyone.report
    assert by_list.report.total == len(_rows(by_list.message)) > 7
    assert by_list.report.by_reason  # some were skipped, for reasons
    # The answer lists them all (fewer than the limit), as stored.
    assert [(d.patient_id, d.channel, d.address, d.status, d.reason) for d in by_list.deliveries] == [
        (str(p), c, a, s, r) for p, c, a, s, r in _rows(by_list.message)
    ]
    # Every delivery that goes is queued once; the tasks are full but the last of each instant.
    pending = set(Delivery.objects.filter(status="pending").values_list("pk", flat=True))
    queued = _queued_ids()
    assert len(queued) == len(set(queued)) and set(queued) == pending
    sizes = sorted(len(task.args_kwargs["args"][0]) for task in DBTaskResult.objects.all())
    assert sizes.count(4) >= len(sizes) - 2


def test_the_preview_of_every_patient_counts_what_the_plan_stores(practice, small_chunks):
    _mixed_patients(practice)
    preview = preview_message(
        practice=practice, kind="broadcast", category="recall", patient_ids=EVERY_PATIENT, content=CONTENT
    )
    planned = create_message(
        practice=practice, kind="broadcast", category="recall", patient_ids=EVERY_PATIENT, content=CONTENT
    )
    assert preview.recipients == Patient.objects.filter(practice=practice).count()
    assert sum(preview.by_channel.values()) == planned.report.pending
    assert preview.skipped == planned.report.by_reason


def test_an_unknown_patient_in_a_late_chunk_stores_and_queues_nothing(practice, small_chunks):
    ids = _mixed_patients(practice)
    other_practice, _ = make_practice(name="Elm Clinic", number="+14155550199")
    stranger = str(make_patient(other_practice, phones=[("+16175550100", "mobile")]).pk)
    with pytest.raises(InvalidInput) as refused:
        create_message(
            practice=practice, kind="broadcast", category="recall", patient_ids=[*ids, stranger], content=CONTENT
        )
    assert refused.value.field == "patient_ids" and stranger in refused.value.message
    assert refused.value.message.startswith("1 unknown patient(s)")
    assert not Message.objects.exists() and not Delivery.objects.exists() and not DBTaskResult.objects.exists()


def test_unacknowledged_warnings_found_late_store_and_queue_nothing(practice, small_chunks):
    ids = _mixed_patients(practice)
    late = make_patient(practice, phones=[("+16175550101", "mobile")], marketing_consent="no")
    with pytest.raises(Unacknowledged) as refused:
        create_message(
            practice=practice, kind="manual", category="payment_due", patient_ids=[*ids, late.pk], content=CONTENT
        )
    assert str(late.pk) in refused.value.warnings
    assert not Message.objects.exists() and not Delivery.objects.exists() and not DBTaskResult.objects.exists()
    sent = create_message(
        practice=practice,
        kind="manual",
        category="payment_due",
        patient_ids=[*ids, late.pk],
        content=CONTENT,
        acknowledge_warnings=True,
    )
    assert str(late.pk) in sent.warnings and Delivery.objects.filter(message=sent.message).exists()
    pending = set(Delivery.objects.filter(status="pending").values_list("pk", flat=True))
    assert sorted(_queued_ids()) == sorted(pending)


def test_a_replayed_request_answers_with_the_counts_of_the_first(practice, small_chunks):
    ids = _mixed_patients(practice)
    first = create_message(
        practice=practice, kind="broadcast", category="recall", patient_ids=ids, content=CONTENT, idempotency_key="k1"
    )
    again = create_message(
        practice=practice, kind="broadcast", category="recall", patient_ids=ids, content=CONTENT, idempotency_key="k1"
    )
    assert again.replayed and again.message.pk == first.message.pk
    assert again.report == first.report and again.deliveries == first.deliveries
    assert Message.objects.count() == 1


def test_a_plans_dispatch_tasks_are_the_rows_enqueue_dispatch_writes(practice):
    """The plan writes its tasks in one statement per chunk: each row is the one django-tasks-db writes for
    ``enqueue_dispatch`` (the worker reads nothing else), at once or at the window's opening."""
    practice.send_window_start, practice.send_window_end = time(8, 0), time(21, 0)
    practice.timezone = "America/New_York"
    practice.save()
    ids = _landline_patients(practice, 2)
    columns = [f.attname for f in DBTaskResult._meta.fields if f.attname not in ("id", "enqueued_at", "args_kwargs")]
    for now in (
        datetime(2026, 3, 10, 15, 0, tzinfo=UTC),
        datetime(2026, 3, 10, 23, 30, tzinfo=ZoneInfo("America/New_York")),
    ):
        DBTaskResult.objects.all().delete()
        create_message(
            practice=practice, kind="broadcast", category="recall", patient_ids=ids, content=CONTENT, now=now
        )
        [planned] = DBTaskResult.objects.all()
        calls = list(
            Delivery.objects.filter(channel="voice", status__in=("pending", "deferred")).values_list("pk", "not_before")
        )
        assert len(calls) == 2 and len({at for _, at in calls}) == 1
        assert (calls[0][1] is None) == (now.tzinfo is UTC)  # 10 a.m. in New York; then 11:30 p.m., deferred
        enqueue_dispatch([pk for pk, _ in calls], run_after=calls[0][1])
        enqueued = DBTaskResult.objects.exclude(pk=planned.pk).get()
        assert [getattr(planned, c) for c in columns] == [getattr(enqueued, c) for c in columns]
        assert planned.args_kwargs == enqueued.args_kwargs == {"args": [sorted(pk for pk, _ in calls)], "kwargs": {}}
        assert planned.task_result.task == enqueued.task_result.task
        assert planned.enqueued_at is not None
        Delivery.objects.all().delete()
