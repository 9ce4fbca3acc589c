"""A minimal SMS webhook on the standard library (wsgiref), using ConsentService.

* ``POST /sms``     the provider's inbound webhook (Twilio form fields
  ``From``, ``Body``, ``MessageSid``, and ``OptOutType`` with Advanced
  Opt-Out). Replies (confirmations, reminders) go out through ``send``, not
  inline, so the answer is an empty TwiML document.
* ``POST /status``  the provider's status callback (``MessageSid``,
  ``MessageStatus``, ``ErrorCode``): delivery evidence; an opt-out error code
  (Twilio 21610) records the stop.
* ``POST /optin``   sends the opt-in request (``to``, ``agent``, optional
  ``greeting``, ``locale``).
* ``POST /text``    an agent's message (``to``, ``body``, ``agent``): 202 when
  accepted, 409 with the reason when the contact's consent blocks it.

Every decision's ``outcome`` (changed, duplicate, stale, conversation...) is
logged, so "why did nothing happen" has an answer. With ``TWILIO_AUTH_TOKEN``
set, ``/sms`` and ``/status`` refuse a request whose ``X-Twilio-Signature``
does not verify (``pip install 'optin-core[twilio]'``); set
``PUBLIC_URL`` to the URL Twilio calls (behind a proxy it differs from the
one the server sees).

Run ``python examples/webhook.py`` (it listens on 127.0.0.1 only) and try::

    curl --data-urlencode to=+15551230000 -d agent=martha localhost:8000/optin
    curl --data-urlencode From=+15551230000 -d Body=YES -d MessageSid=SM1 \
        localhost:8000/sms
    curl --data-urlencode to=+15551230000 -d body=Hi -d agent=martha \
        localhost:8000/text

The handlers are plain functions of a service and a form, so they are
unit-tested without a server. Replace ``print_send`` with the provider's
client, passing ``message.key`` as its idempotency key and raising
``optin_core.providers.opt_out_error(...)`` for an opt-out error code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import make_server

from optin_core import (
    ConsentService,
    Decision,
    OptinError,
    Outgoing,
    Policy,
    SendBlocked,
    SQLiteStore,
)
from optin_core.providers import twilio_inbound, verify_twilio_signature

Response = tuple[str, list[tuple[str, str]], bytes]

_EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_STATUSES = {"delivered": "delivered", "undelivered": "undelivered", "failed": "failed"}

log = logging.getLogger("webhook")


def _logged(decision: Decision, what: str) -> Decision:
    log.info(
        "%s: %s (state %s, %d message(s))",
        what,
        decision.outcome.value,
        decision.consent.state.value,
        len(decision.outgoing),
    )
    return decision


def handle_inbound(service: ConsentService, form: Mapping[str, str]) -> Response:
    """Apply one inbound SMS. A redelivered webhook is harmless (MessageSid)."""
    try:
        sms = twilio_inbound(form)
    except ValueError as e:
        return _text("400 Bad Request", str(e))
    try:
        _logged(sms.receive(service), f"inbound {sms.message_id}")
    except OptinError as e:  # a contact id the store cannot key, say
        return _text("400 Bad Request", str(e))
    return "200 OK", [("Content-Type", "text/xml")], _EMPTY_TWIML


def handle_status(service: ConsentService, form: Mapping[str, str]) -> Response:
    """A status callback: delivery evidence, never an error to the provider."""
    sid, status = form.get("MessageSid"), form.get("MessageStatus", "")
    if not sid:
        return _text("400 Bad Request", "MessageSid is required")
    if status in _STATUSES:
        service.delivery_status(
            sid,
            _STATUSES[status],
            error_code=form.get("ErrorCode") or None,
            provider="twilio",
        )
    return _text("200 OK", "ok")


def handle_opt_in(service: ConsentService, form: Mapping[str, str]) -> Response:
    """Send (or resend) the opt-in request."""
    to, agent = form.get("to"), form.get("agent")
    if not to or not agent:
        return _text("400 Bad Request", "to and agent are required")
    try:
        decision = service.request_opt_in(
            to,
            by=agent,
            greeting=form.get("greeting") or None,
            locale=form.get("locale") or None,
        )
    except OptinError as e:
        return _text("409 Conflict", str(e))
    _logged(decision, f"opt-in request to {to}")
    return _text("202 Accepted", decision.outcome.value)


def handle_text(service: ConsentService, form: Mapping[str, str]) -> Response:
    """Send an agent's own words if the contact's consent allows it."""
    to, body, agent = form.get("to"), form.get("body"), form.get("agent")
    if not to or not body or not agent:
        return _text("400 Bad Request", "to, body and agent are required")
    try:
        _logged(service.send_text(to, body, by=agent), f"text to {to}")
    except SendBlocked as e:
        return _text("409 Conflict", f"{e.reason}: {e}")
    except OptinError as e:
        return _text("400 Bad Request", str(e))
    return _text("202 Accepted", "queued")


def make_app(
    service: ConsentService,
    *,
    auth_token: str | None = None,
    public_url: str | None = None,
) -> Callable[..., Iterable[bytes]]:
    """The WSGI application. With ``auth_token``, Twilio's routes check the
    request signature against ``public_url`` (or the URL the server sees)."""
    routes = {
        "/sms": handle_inbound,
        "/status": handle_status,
        "/optin": handle_opt_in,
        "/text": handle_text,
    }
    signed = {"/sms", "/status"}

    def app(
        environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        handler = routes.get(path)
        if handler is None or environ.get("REQUEST_METHOD") != "POST":
            status, headers, body = _text("404 Not Found", "POST " + ", ".join(routes))
        else:
            form = read_form(environ)
            if (
                auth_token
                and path in signed
                and not _signed(environ, form, auth_token, public_url)
            ):
                status, headers, body = _text("403 Forbidden", "bad signature")
            else:
                status, headers, body = handler(service, form)
        start_response(status, headers)
        return [body]

    return app


def _signed(
    environ: Mapping[str, Any],
    form: Mapping[str, str],
    auth_token: str,
    public_url: str | None,
) -> bool:
    base = public_url or f"http://{environ.get('HTTP_HOST', 'localhost')}"
    url = base.rstrip("/") + environ.get("PATH_INFO", "")
    signature = environ.get("HTTP_X_TWILIO_SIGNATURE", "")
    return verify_twilio_signature(url, form, signature, auth_token)


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


def main(port: int = 8000, path: str = "optin.db", host: str = "127.0.0.1") -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    store = SQLiteStore(path)
    service = ConsentService(Policy(org_name="Acme Advisors"), store, print_send)
    stop = threading.Event()

    def flusher() -> None:  # retries failed sends; also recovers after a crash
        while not stop.wait(5.0):
            service.flush()

    threading.Thread(target=flusher, daemon=True).start()
    app = make_app(
        service,
        auth_token=os.environ.get("TWILIO_AUTH_TOKEN"),
        public_url=os.environ.get("PUBLIC_URL"),
    )
    with make_server(host, port, app) as server:
        print(f"listening on http://{host}:{port} (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    stop.set()
    store.close()


if __name__ == "__main__":
    main()
