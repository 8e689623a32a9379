"""A real SMTP server on loopback (aiosmtpd, in its own thread) that keeps what it receives.

It speaks SMTP as any mail server does; the tests choose, per recipient, a
reply to ``RCPT TO`` (``550 5.1.1 ...``) and can make it hold its answer to
the end of ``DATA`` (a server that takes a message and never says so).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller


def free_port() -> int:
    """A loopback port nothing listens on (until someone binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)


@dataclass
class FakeSMTP:
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    # recipient -> the reply to its RCPT TO, e.g. "550 5.1.1 No such user"
    refuse: dict[str, str] = field(default_factory=dict)
    # seconds to wait, once the message is kept, before answering the end of DATA
    data_delay: float = 0.0

    # aiosmtpd's handler hooks, run on the server's event loop.

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        return "250 2.0.0 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        return [r.message() for r in self.received]


def start_fake_smtp() -> tuple[FakeSMTP, Controller]:
    """Start the server on a free loopback port; stop it with ``controller.stop()``."""
    fake = FakeSMTP()
    for _ in range(5):  # the port may be taken between choosing and binding it
        fake.port = free_port()
        controller = Controller(fake, hostname=fake.host, port=fake.port, ready_timeout=5)
        try:
            controller.start()
        except OSError:
            continue
        return fake, controller
    raise RuntimeError("no free loopback port for the fake SMTP server")
