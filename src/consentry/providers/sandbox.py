"""The default provider: records every message locally, reaches no network."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from django.db import connection, transaction

from consentry.crypto import encrypt

from .base import Outbound, SendResult
from .models import SandboxMessage


class SandboxProvider:
    name = "sandbox"
    # In-app notices always go to the portal's own store (the in_app provider), never here.
    channels = frozenset({"sms", "voice", "email"})

    def __init__(self, practice=None) -> None:
        self.practice = practice

    def send(self, message: Outbound) -> SendResult:
        return self.send_many([message])[0]

    def send_many(self, messages: list[Outbound]) -> list[SendResult]:
        """Record many messages with one statement (the dispatcher hands over a batch at once).

        A plain insert, encrypting what the model encrypts: the ORM's per-field
        preparation of a bulk insert costs more than the rows here.
        """
        refs = [f"SB{uuid.uuid4().hex}" for _ in messages]
        now = connection.ops.adapt_datetimefield_value(datetime.now(UTC))
        rows = [
            (
                str(m.practice_id).replace("-", "") if connection.vendor == "sqlite" else str(m.practice_id),
                m.delivery_id,
                m.channel,
                m.to,
                m.sender,
                encrypt(m.subject) if m.subject else "",
                encrypt(m.body),
                encrypt(m.html) if m.html else "",
                json.dumps(m.headers),
                ref,
                now,
            )
            for m, ref in zip(messages, refs, strict=True)
        ]
        # One transaction for the batch: in autocommit every row would be a commit of its own.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(
                f'INSERT INTO {SandboxMessage._meta.db_table} (practice_id, delivery_id, channel, "to", sender, '
                "subject, body, html, headers, ref, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
        # The sandbox's handset always answers: delivery is confirmed at once.
        return [SendResult(provider_ref=ref, status="delivered") for ref in refs]
