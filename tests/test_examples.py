"""The examples a host copies from: the webhook."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import Any

from optin_core import (
    ConsentState,
    MessageKind,
)

from .service_env import A, Env

# ---------------------------------------------------------------------------
# The webhook example


def _load_example() -> Any:
    path = Path(__file__).parent.parent / "examples" / "webhook.py"
    spec = importlib.util.spec_from_file_location("webhook_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_webhook_example_handlers(env: Env) -> None:
    hook = _load_example()
    svc = env.service
    status, _, body = hook.handle_inbound(svc, {"From": A, "Body": "hi"})
    assert status.startswith("400")
    status, _, _ = hook.handle_text(svc, {"to": A, "body": "hi", "agent": "m"})
    assert status.startswith("409")
    svc.request_opt_in(A)
    form = {"From": A, "Body": "YES", "MessageSid": "SM1"}
    for _ in range(2):  # a redelivered webhook is harmless
        status, _headers, body = hook.handle_inbound(svc, form)
        assert status == "200 OK"
        assert b"<Response>" in body
    assert env.sender.kinds(A).count(MessageKind.OPT_IN_CONFIRMATION) == 1
    status, _, body = hook.handle_text(svc, {"to": A, "body": "hi", "agent": "m"})
    assert status.startswith("202")
    status, _, _ = hook.handle_text(svc, {"to": A, "body": "x" * 5000, "agent": "m"})
    assert status.startswith("409")
    status, _, _ = hook.handle_text(svc, {"to": "", "body": "hi", "agent": "m"})
    assert status.startswith("400")


def test_webhook_example_wsgi_app(env: Env) -> None:
    hook = _load_example()
    app = hook.make_app(env.service)
    env.service.request_opt_in(A)
    payload = b"From=%2B15550001&Body=Stop&MessageSid=SM7"
    seen: list[str] = []
    environ = {
        "PATH_INFO": "/sms",
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(len(payload)),
        "wsgi.input": io.BytesIO(payload),
    }
    body = app(environ, lambda status, headers: seen.append(status))
    assert seen == ["200 OK"]
    assert b"Response" in b"".join(body)
    assert env.service.get(A).state is ConsentState.STOPPED
    app({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, lambda s, h: seen.append(s))
    assert seen[-1].startswith("404")
    assert hook.read_form({"CONTENT_LENGTH": "x", "wsgi.input": io.BytesIO()}) == {}
