"""The webhook example: routes, outcomes, status callbacks, Twilio signatures."""

from __future__ import annotations

import importlib.util
import io
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from optin_core import ConsentService, ConsentState, MemoryStore, MessageKind, Policy

from .service_helpers import Clock, Sender

A = "+15550001"


def _example() -> Any:
    path = Path(__file__).parent.parent / "examples" / "webhook.py"
    spec = importlib.util.spec_from_file_location("webhook_example_2", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def hook() -> Any:
    return _example()


@pytest.fixture
def env() -> tuple[ConsentService, Sender]:
    sender = Sender()
    return ConsentService(
        Policy(org_name="Acme"), MemoryStore(), sender, clock=Clock()
    ), sender


def _post(
    app: Any, path: str, form: dict[str, str], **headers: str
) -> tuple[str, bytes]:
    payload = urlencode(form).encode()
    environ = {
        "PATH_INFO": path,
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(len(payload)),
        "wsgi.input": io.BytesIO(payload),
        "HTTP_HOST": "example.com",
        **headers,
    }
    seen: list[str] = []
    body = b"".join(app(environ, lambda status, h: seen.append(status)))
    return seen[0], body


def test_opt_in_route_then_inbound_logs_outcomes(
    hook: Any, env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    service, sender = env
    app = hook.make_app(service)
    with caplog.at_level(logging.INFO, logger="webhook"):
        status, _ = _post(app, "/optin", {"to": A, "agent": "martha"})
        assert status.startswith("202")
        form = {"From": A, "Body": "YES", "MessageSid": "SM1"}
        assert _post(app, "/sms", form)[0] == "200 OK"
        assert _post(app, "/sms", form)[0] == "200 OK"  # redelivered
    assert "opt-in request to +15550001: changed" in caplog.text
    assert "inbound SM1: changed" in caplog.text
    assert "inbound SM1: duplicate" in caplog.text
    assert sender.kinds(A) == [
        MessageKind.OPT_IN_REQUEST,
        MessageKind.OPT_IN_CONFIRMATION,
    ]
    assert _post(app, "/optin", {"to": A})[0].startswith("400")


def test_status_callbacks_record_delivery_and_opt_outs(hook: Any) -> None:
    store = MemoryStore()
    service = ConsentService(
        Policy(org_name="Acme"), store, lambda m: f"SM-{m.key[:6]}", clock=Clock()
    )
    app = hook.make_app(service)
    (request,) = service.request_opt_in(A).outgoing
    sid = f"SM-{request.key[:6]}"
    assert (
        _post(app, "/status", {"MessageSid": sid, "MessageStatus": "delivered"})[0]
        == "200 OK"
    )
    assert store.messages(A)[0].delivery == "delivered"
    # Unknown ids and interim statuses are acknowledged, never errors.
    assert (
        _post(app, "/status", {"MessageSid": "SMnone", "MessageStatus": "failed"})[0]
        == "200 OK"
    )
    assert (
        _post(app, "/status", {"MessageSid": sid, "MessageStatus": "sent"})[0]
        == "200 OK"
    )
    assert _post(app, "/status", {})[0].startswith("400")
    opted_out = {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "21610"}
    assert _post(app, "/status", opted_out)[0] == "200 OK"
    assert service.get(A).state is ConsentState.STOPPED


def test_twilio_signatures_are_enforced_when_configured(hook: Any, env: Any) -> None:
    from twilio.request_validator import RequestValidator

    service, _sender = env
    app = hook.make_app(service, auth_token="secret", public_url="https://acme.test")
    form = {"From": A, "Body": "STOP", "MessageSid": "SM9"}
    good = RequestValidator("secret").compute_signature("https://acme.test/sms", form)
    assert _post(app, "/sms", form, HTTP_X_TWILIO_SIGNATURE="forged")[0].startswith(
        "403"
    )
    assert service.get(A).version == 0
    assert _post(app, "/sms", form, HTTP_X_TWILIO_SIGNATURE=good)[0] == "200 OK"
    assert service.get(A).state is ConsentState.STOPPED
    # Agents' routes are the host's own: not signed by Twilio.
    assert _post(app, "/optin", {"to": "+15550002", "agent": "m"})[0].startswith("202")
