"""The default provider: records every message locally, reaches no network."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

from django.db import connection, transaction

from consentry.crypto import fernet

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
        # SB and 32 hex digits: the microsecond, then 72 random bits (as a UUIDv7 orders). Refs that grow with
        # time add to the end of their indexes (this table's, the deliveries' provider_ref) instead of
        # dirtying a random page of each per row, which every batch's commit would write.
        stamp = f"{time.time_ns() // 1000:014x}"[-14:]
        refs = [f"SB{stamp}{os.urandom(9).hex()}" for _ in messages]
        now = connection.ops.adapt_datetimefield_value(datetime.now(UTC))
        native_uuid = connection.features.has_native_uuid_field
        practices: dict = {}  # practice id -> as stored
        seal = fernet().encrypt  # crypto.encrypt, with the keys looked up once for the batch
        rows = []
        for m, ref in zip(messages, refs, strict=True):
            if m.practice_id not in practices:
                practices[m.practice_id] = str(m.practice_id) if native_uuid else str(m.practice_id).replace("-", "")
            rows.append(
                (
                    practices[m.practice_id],
                    m.delivery_id,
                    m.channel,
                    m.to,
                    m.sender,
                    seal(m.subject.encode()).decode() if m.subject else "",
                    seal(m.body.encode()).decode(),
                    seal(m.html.encode()).decode() if m.html else "",
                    json.dumps(m.headers) if m.headers else "{}",
                    ref,
                    now,
                )
            )
        # One transaction for the batch: in autocommit every row would be a commit of its own.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(
                f'INSERT INTO {SandboxMessage._meta.db_table} (practice_id, delivery_id, channel, "to", sender, '
                "subject, body, html, headers, ref, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
        # The sandbox's handset always answers: delivery is confirmed at once.
        return [SendResult(provider_ref=ref, status="delivered") for ref in refs]
