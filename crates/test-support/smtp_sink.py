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


class Tally:
    """Counts what arrives instead of storing it, for benchmarks: a maildir's
    file writes would measure the disk, not the sender. Appends one line per
    message (its Message-ID) to the file named on the command line:
    python -m aiosmtpd -n -l HOST:PORT -c smtp_sink.Tally FILE"""

    def __init__(self, path):
        self.tally = open(path, "a", buffering=1)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("Tally needs the path of its tally file")
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        message_id = "-"
        for line in envelope.content.splitlines():
            if not line.strip():
                break  # the end of the headers
            if line.lower().startswith(b"message-id:"):
                message_id = line.split(b":", 1)[1].strip().decode("ascii", "replace")
        self.tally.write(message_id + "\n")
        return "250 OK"
