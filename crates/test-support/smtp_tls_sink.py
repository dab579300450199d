"""The SMTP sink as a relay that demands STARTTLS and credentials (see
src/smtp.rs, SmtpSink::start_tls), as a production mail relay does.

    python smtp_tls_sink.py --port PORT --cert LEAF.pem --key LEAF.key \
        --user USER --password PASSWORD MAILDIR

Nothing is accepted before STARTTLS; AUTH is offered only over TLS and
required before MAIL. Every stored message gets two headers saying how it
came: X-Sink-TLS (yes/no) and X-Sink-Login (the authenticated user), so a
test can check the session, not just the bytes."""

import argparse
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from smtp_sink import Sink


class RecordingSink(Sink):
    def prepare_message(self, session, envelope):
        message = super().prepare_message(session, envelope)
        message["X-Sink-TLS"] = "yes" if session.ssl else "no"
        message["X-Sink-Login"] = getattr(session, "sink_login", "")
        return message


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode()
        if login == user and auth_data.password.decode() == password:
            session.sink_login = login
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return check


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("maildir")
    args = parser.parse_args()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    controller = Controller(
        RecordingSink(args.maildir),
        hostname="127.0.0.1",
        port=args.port,
        server_hostname="localhost",
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticator(args.user, args.password),
    )
    controller.start()
    # Serve until killed (the test stops it with SIGKILL).
    threading.Event().wait()


if __name__ == "__main__":
    main()
