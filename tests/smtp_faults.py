"""A real SMTP server on localhost that misbehaves on purpose (aiosmtpd, plain, with AUTH).

It can hold a session at MAIL (the client waits before sending anything), store the
message and then hold its answer (late, or until released), or store it and drop the
connection without answering. bench/faults.py uses it too.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from tests.mail_fixtures import Handler, MailServer


@dataclass
class FaultHandler(Handler):
    hold_at_mail: bool = False  # wait at MAIL FROM until `release` is set
    answer_after: float | None = None  # store the message, answer only this much later
    hold_answer: bool = False  # store the message, answer once `release` is set
    drop_after_data: bool = False  # store the message, then close without answering
    release: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)  # a session is held
    stored: threading.Event = field(default_factory=threading.Event)  # a message stored

    async def _until_released(self) -> None:
        self.held.set()
        while not self.release.is_set():
            await asyncio.sleep(0.05)

    async def handle_MAIL(self, server, session, envelope, address, mail_options) -> str:
        if self.hold_at_mail:
            await self._until_released()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        faulty = self.answer_after is not None or self.hold_answer or self.drop_after_data
        if not faulty:
            return await super().handle_DATA(server, session, envelope)
        status = await super().handle_DATA(server, session, envelope)
        self.stored.set()
        if self.drop_after_data:
            server.transport.abort()  # no answer at all: the connection just ends
            await asyncio.sleep(1)
        elif self.hold_answer:
            await self._until_released()
        else:
            await asyncio.sleep(self.answer_after or 0)
        return status


class FaultServer(MailServer):
    """MailServer("none") with a FaultHandler; `.handler` sets the fault."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__("none", None, port)
        self.handler = FaultHandler()

    def message_ids(self) -> list[str]:
        return [str(r.message["Message-ID"]) for r in self.received]
