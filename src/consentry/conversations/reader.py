"""The worker's reader of received texts: it reads what the webhook stored, oldest first.

The webhook's one insert is the whole queue: a text stays unread
(``processed_at`` is empty) until a reader has filed it, acted on it and
answered it, in one transaction. Every worker process runs one reader
thread, apart from the task queue, so a STOP never waits behind a
broadcast's deliveries. Readers in several processes may look at the same
text: the claim in ``process_inbound`` lets one of them read it. A text whose
reading fails stays unread (a STOP keeps holding sends to its number) and is
tried again a minute later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections, connection

from consentry.keywords.models import InboundMessage

from .inbound import process_inbound

log = logging.getLogger("consentry.reader")

READ_WITHIN = 0.1  # seconds between a reader's looks when nothing is unread
BATCH = 50
RETRY_AFTER = 60.0  # seconds before a text whose reading failed is tried again


class Reader(threading.Thread):
    def __init__(self, interval: float = READ_WITHIN, pause: Callable[[], None] | None = None):
        """``pause``: called before each text (the web threads of ``serve`` answer first)."""
        super().__init__(name="consentry-reader", daemon=True)
        self.interval = interval
        self.pause = pause
        self.stopped = threading.Event()
        self.failing: dict[int, float] = {}  # text id -> when to try it again

    def run(self) -> None:
        try:
            while True:
                try:
                    close_old_connections()
                    read = self.read_unread()
                except Exception:  # a database hiccup must not end reading: the next round tries again
                    log.exception("reading received texts failed; trying again shortly")
                    read = 0
                if self.stopped.wait(0 if read else self.interval):
                    return
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()

    def read_unread(self) -> int:
        """Read the texts not yet read, oldest first, until none is left; how many this call read."""
        read = 0
        while True:
            now = time.monotonic()
            skip = [pk for pk, due in self.failing.items() if due > now]
            unread = InboundMessage.objects.filter(processed_at__isnull=True).exclude(pk__in=skip)
            ids = list(unread.order_by("pk").values_list("pk", flat=True)[:BATCH])
            if not ids:
                return read
            for pk in ids:
                if self.pause is not None:
                    self.pause()
                try:
                    read += process_inbound(pk) is not None
                except Exception:
                    log.exception("received text %s could not be read; trying again in %ds", pk, RETRY_AFTER)
                    self.failing[pk] = time.monotonic() + RETRY_AFTER
                else:
                    self.failing.pop(pk, None)
