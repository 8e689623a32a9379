"""`consentry unsubscribe_mailbox`: an SMTP server for the mailto: of List-Unsubscribe, for self-hosting.

Point the MX of ``CONSENTRY_UNSUBSCRIBE_MAILBOX``'s domain (or a relay) here.
Mail to that address whose subject carries a valid unsubscribe token
unsubscribes the address the token was made for; mail to any other address
is refused at ``RCPT TO``. Deployments with an ESP can use its inbound
webhook instead (``/webhooks/anymail/<esp>/inbound/``): both end in the same
function.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import threading
from concurrent.futures import Executor, ThreadPoolExecutor

from aiosmtpd.controller import Controller
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection

from consentry.management.commands._options import port as port_number
from consentry.messaging.email_events import unsubscribe_by_mail

log = logging.getLogger("consentry.unsubscribe_mailbox")

# An unsubscribe request is a few lines; anything much larger is not one.
DATA_SIZE_LIMIT = 256 * 1024


def _unsubscribe(sender: str, subject: str) -> None:
    try:
        unsubscribe_by_mail(sender=sender, subject=subject)
    except DatabaseError:
        connection.close()  # e.g. the database restarted: the next mail connects afresh
        raise


class MailboxHandler:
    """aiosmtpd handler: takes mail for the unsubscribe mailbox only, and acts on each.

    The ORM is synchronous: each mail is recorded on ``executor``'s thread
    (by default one thread, so one database connection), away from the
    server's event loop.
    """

    def __init__(self, executor: Executor | None = None):
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="unsubscribe-mailbox")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's naming)
        if address.strip().lower() != settings.CONSENTRY_UNSUBSCRIBE_MAILBOX.strip().lower():
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        message = email.message_from_bytes(envelope.original_content or b"", policy=email.policy.default)
        try:
            [sender] = message["From"].addresses
            sender = sender.addr_spec
        except (AttributeError, TypeError, ValueError, IndexError):  # no From, several, or unreadable
            sender = envelope.mail_from or ""
        subject = str(message.get("Subject", "") or "")
        try:
            await asyncio.get_running_loop().run_in_executor(self.executor, _unsubscribe, sender, subject)
        except Exception:  # e.g. the database is down: the sending server keeps the mail and tries again
            log.exception("unsubscribe mail could not be recorded")
            return "451 4.3.0 Try again later"
        # The same answer whatever the token: the mailbox says nothing about addresses.
        return "250 2.0.0 Message accepted"


def mailbox_controller(host: str, port: int, executor: Executor | None = None) -> Controller:
    return Controller(
        MailboxHandler(executor), hostname=host, port=port, data_size_limit=DATA_SIZE_LIMIT, ready_timeout=5
    )


class Command(BaseCommand):
    help = "Receive mail for CONSENTRY_UNSUBSCRIBE_MAILBOX over SMTP; each valid token in a subject unsubscribes."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="The address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=port_number, default=2525, help="The SMTP port to listen on (default 2525).")

    def handle(self, *, host, port, **options):
        controller = mailbox_controller(host, port)
        controller.start()
        self.stdout.write(f"Unsubscribe mailbox {settings.CONSENTRY_UNSUBSCRIBE_MAILBOX} on smtp://{host}:{port}/")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()
