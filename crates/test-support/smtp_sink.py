"""The SMTP sink's handler (see src/smtp.rs): aiosmtpd's Mailbox (every
message into a maildir the test reads) that refuses, for good, any recipient
whose address starts with "rejected" -- so tests can see what a permanent
(5xx) refusal does."""

from aiosmtpd.handlers import Mailbox


class Sink(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("rejected"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"
