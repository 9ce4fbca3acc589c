"""A minimal SMS webhook on the standard library (wsgiref), using ConsentService.

* ``POST /sms``  the provider's inbound webhook (Twilio-style form fields
  ``From``, ``Body``, ``MessageSid``). Replies (confirmations, reminders) go
  out through ``send``, not inline, so the answer is an empty TwiML document.
* ``POST /text`` an agent's message (``to``, ``body``, ``agent``): 202 when
  accepted, 409 with the reason when the contact's consent blocks it.

Run ``python examples/webhook.py`` and try::

    curl --data-urlencode to=+15551230000 -d body=Hi -d agent=martha \
        localhost:8000/text
    curl --data-urlencode From=+15551230000 -d Body=STOP -d MessageSid=SM1 \
        localhost:8000/sms

``handle_inbound`` and ``handle_text`` are plain functions of a service and a
form, so they are unit-tested without a server. Production hosts also verify
the provider's request signature (``X-Twilio-Signature``) before trusting a
form, and replace ``print_send`` with their provider's client, passing
``message.key`` as its idempotency key.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import make_server

from optin_core import (
    ConsentService,
    OptinError,
    Outgoing,
    Policy,
    SendBlocked,
    SQLiteStore,
)

Response = tuple[str, list[tuple[str, str]], bytes]

_EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def handle_inbound(service: ConsentService, form: Mapping[str, str]) -> Response:
    """Apply one inbound SMS. A redelivered webhook is harmless (MessageSid)."""
    sender, body, sid = form.get("From"), form.get("Body"), form.get("MessageSid")
    if not sender or body is None or not sid:
        return _text("400 Bad Request", "From, Body and MessageSid are required")
    service.receive(sender, body, message_id=sid)
    return "200 OK", [("Content-Type", "text/xml")], _EMPTY_TWIML


def handle_text(service: ConsentService, form: Mapping[str, str]) -> Response:
    """Send an agent's own words if the contact's consent allows it."""
    to, body, agent = form.get("to"), form.get("body"), form.get("agent")
    if not to or not body or not agent:
        return _text("400 Bad Request", "to, body and agent are required")
    try:
        service.send_text(to, body, by=agent)
    except SendBlocked as e:
        return _text("409 Conflict", f"{e.reason}: {e}")
    except OptinError as e:
        return _text("400 Bad Request", str(e))
    return _text("202 Accepted", "queued")


def make_app(service: ConsentService) -> Callable[..., Iterable[bytes]]:
    """The WSGI application routing ``/sms`` and ``/text`` to the handlers."""
    routes = {"/sms": handle_inbound, "/text": handle_text}

    def app(
        environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        handler = routes.get(environ.get("PATH_INFO", ""))
        if handler is None or environ.get("REQUEST_METHOD") != "POST":
            status, headers, body = _text("404 Not Found", "POST /sms or /text")
        else:
            status, headers, body = handler(service, read_form(environ))
        start_response(status, headers)
        return [body]

    return app


def read_form(environ: Mapping[str, Any]) -> dict[str, str]:
    """The urlencoded form of a WSGI request, one value per field."""
    try:
        size = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        size = 0
    raw = environ["wsgi.input"].read(min(size, 64 * 1024)) if size > 0 else b""
    fields = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def print_send(message: Outgoing) -> None:
    """Stand-in for a provider client: pass ``message.key`` as idempotency key."""
    print(f"-> {message.contact} [{message.kind.value}] {message.text!r}")


def _text(status: str, text: str) -> Response:
    return status, [("Content-Type", "text/plain; charset=utf-8")], text.encode()


def main(port: int = 8000, path: str = "optin.db") -> None:
    store = SQLiteStore(path)
    service = ConsentService(Policy(org_name="Acme Advisors"), store, print_send)
    stop = threading.Event()

    def flusher() -> None:  # retries failed sends; also recovers after a crash
        while not stop.wait(5.0):
            service.flush()

    threading.Thread(target=flusher, daemon=True).start()
    with make_server("", port, make_app(service)) as server:
        print(f"listening on http://localhost:{port} (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    stop.set()
    store.close()


if __name__ == "__main__":
    main()
