"""optin_core.testing: the fakes, the strategies and the pytest plugin that
hosts test their integration with."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import optin_core.testing as kit
from optin_core import (
    Consent,
    ConsentService,
    ConsentState,
    Inbound,
    Input,
    Intent,
    MemoryStore,
    MessageKind,
    Mode,
    OptinError,
    Policy,
    RequestOptIn,
    SQLiteStore,
    available_locales,
    decide,
    parse_reply,
    verify,
)
from optin_core.testing import FakeClock, RecordingSender
from optin_core.testing import strategies as ks

CONTACT = "+15555550100"

# -- FakeClock -------------------------------------------------------------------


def test_fake_clock_stands_still_until_moved() -> None:
    clock = FakeClock()
    assert clock() == clock() == kit.T0
    assert clock.advance(hours=24) == kit.T0 + timedelta(days=1) == clock()
    later = datetime(2027, 1, 1, tzinfo=UTC)
    assert clock.set(later) == later == clock()
    clock.now = kit.T0
    assert clock() == kit.T0
    assert "2026-03-02" in repr(clock)


@pytest.mark.parametrize("bad", [datetime(2026, 3, 2), "2026-03-02", None])
def test_fake_clock_refuses_naive_and_non_datetimes(bad: object) -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        FakeClock(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aware datetime"):
        FakeClock().set(bad)  # type: ignore[arg-type]


# -- RecordingSender -------------------------------------------------------------


def _service(sender: RecordingSender, clock: FakeClock) -> ConsentService:
    return ConsentService(Policy(org_name="Acme"), MemoryStore(), sender, clock=clock)


def test_recording_sender_records_what_the_service_sends() -> None:
    sender, clock = RecordingSender(), FakeClock()
    service = _service(sender, clock)
    service.request_opt_in(CONTACT)
    service.receive(CONTACT, "Yes", message_id="SM1")
    assert sender.kinds(CONTACT) == [
        MessageKind.OPT_IN_REQUEST,
        MessageKind.OPT_IN_CONFIRMATION,
    ]
    assert sender.kinds("+15555550199") == []
    assert "Reply YES" in sender.texts(CONTACT)[0]
    assert sender.keys() == [m.key for m in sender.sent]
    assert sender.attempts == sender.sent
    assert "2 sent" in repr(sender)
    sender.clear()
    assert sender.sent == sender.attempts == []


def test_recording_sender_fails_on_demand_and_the_outbox_catches_up() -> None:
    sender, clock = RecordingSender(), FakeClock()
    service = _service(sender, clock)
    sender.fail_always()
    service.request_opt_in(CONTACT)  # saved, not sent
    assert sender.sent == []
    assert len(sender.attempts) == 1
    with pytest.raises(ConnectionError, match="provider down"):
        sender(sender.attempts[0])
    sender.recover()
    assert service.flush() == 1
    assert sender.kinds() == [MessageKind.OPT_IN_REQUEST]


def test_fail_first_fails_exactly_n_calls() -> None:
    sender = RecordingSender()
    sender.fail_first(2)
    service = _service(sender, FakeClock())
    service.request_opt_in(CONTACT)
    assert sender.sent == []
    service.flush()
    assert sender.sent == []
    service.flush()
    assert sender.kinds() == [MessageKind.OPT_IN_REQUEST]
    assert len(sender.attempts) == 3


def test_recording_sender_raises_the_error_it_is_given() -> None:
    sender = RecordingSender(
        fail=lambda m: m.kind is MessageKind.OPT_IN_REQUEST,
        error=lambda m: TimeoutError(m.key),
    )
    errors: list[Exception] = []
    service = ConsentService(
        Policy(org_name="Acme"),
        MemoryStore(),
        sender,
        clock=FakeClock(),
        on_send_error=lambda _m, e: errors.append(e),
    )
    service.request_opt_in(CONTACT)
    assert [type(e) for e in errors] == [TimeoutError]


# -- ready services --------------------------------------------------------------


def test_memory_service_is_ready_and_uses_what_it_is_given() -> None:
    sender = RecordingSender()
    clock = FakeClock()
    policy = Policy(org_name="Hearsay", mode=Mode.DISCLAIMER)
    service = kit.memory_service(policy, sender=sender, clock=clock)
    assert service.policy is policy
    assert isinstance(service.store, MemoryStore)
    service.send_text(CONTACT, "Hello")
    assert sender.kinds() == [MessageKind.DISCLAIMER, MessageKind.TEXT]
    assert service.get(CONTACT).last_at == clock()
    assert kit.memory_service().policy.org_name == "Acme"


def test_sqlite_service_keeps_the_record_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "consent.db"
    service = kit.sqlite_service(path)
    service.request_opt_in(CONTACT)
    service.store.close()  # type: ignore[union-attr]
    with SQLiteStore(path) as store:
        head = store.get(CONTACT)
    assert head is not None
    assert head.state is ConsentState.PENDING


# -- the pytest plugin -------------------------------------------------------------


def test_plugin_fixtures_give_a_ready_service(
    optin_service: ConsentService,
    optin_sender: RecordingSender,
    optin_clock: FakeClock,
    optin_store: MemoryStore,
) -> None:
    assert optin_service.store is optin_store
    optin_service.request_opt_in(CONTACT)
    optin_clock.advance(minutes=3)
    optin_service.receive(CONTACT, "STOP", message_id="SM1")
    assert optin_sender.kinds() == [
        MessageKind.OPT_IN_REQUEST,
        MessageKind.STOP_CONFIRMATION,
    ]
    assert optin_service.get(CONTACT).stopped_at == kit.T0 + timedelta(minutes=3)


def test_plugin_sqlite_service_writes_in_tmp_path(
    optin_sqlite_service: ConsentService, optin_sqlite_store: SQLiteStore
) -> None:
    assert optin_sqlite_service.store is optin_sqlite_store
    optin_sqlite_service.request_opt_in(CONTACT)
    assert Path(optin_sqlite_store.path).is_file()
    assert optin_sqlite_store.contacts() == [CONTACT]


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    points = importlib.metadata.entry_points(group="pytest11")
    found = [p for p in points if p.name == "optin_core"]
    assert [p.value for p in found] == ["optin_core.testing.plugin"]
    assert found[0].load() is importlib.import_module("optin_core.testing.plugin")


def test_a_host_project_gets_the_fixtures_without_any_conftest(
    tmp_path: Path,
) -> None:
    """pytest discovers the plugin through its entry point, in a project that
    only has optin_core installed, and a host can override the policy."""
    (tmp_path / "test_host.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from optin_core import MessageKind, Policy

            @pytest.fixture
            def optin_policy():
                return Policy(org_name="Hearsay", default_locale="fr")

            def test_webhook(optin_service, optin_sender):
                optin_service.request_opt_in("+33612345678")
                optin_service.receive("+33612345678", "Oui", message_id="SM1")
                assert optin_sender.kinds()[-1] is MessageKind.OPT_IN_CONFIRMATION
                assert "Hearsay" in optin_sender.texts()[0]
            """
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_strategies_need_hypothesis_and_say_which_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "optin_core.testing.strategies")
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    with pytest.raises(ImportError, match=r"optin-core\[testing\]"):
        _ = kit.policies
    # The fakes need no Hypothesis.
    assert kit.FakeClock()() == kit.T0


def test_other_import_errors_of_the_strategies_are_not_disguised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "optin_core.testing.strategies")
    monkeypatch.setitem(sys.modules, "optin_core._keywords", None)
    with pytest.raises(ImportError) as raised:
        _ = kit.replies
    assert "testing" not in str(raised.value)


def test_unknown_names_are_attribute_errors() -> None:
    import optin_core

    with pytest.raises(AttributeError, match="no_such"):
        _ = kit.no_such
    with pytest.raises(AttributeError, match="no_such"):
        _ = optin_core.no_such
    assert kit.replies is ks.replies
    assert set(kit.__all__) >= set(ks.__all__)


# -- strategies ------------------------------------------------------------------


@given(ks.policies(mode=Mode.DISCLAIMER, org_name=st.just("Hearsay")))
def test_policies_can_be_pinned(policy: Policy) -> None:
    assert policy.mode is Mode.DISCLAIMER
    assert policy.org_name == "Hearsay"


@given(ks.policies())
def test_policies_vary_the_switches(policy: Policy) -> None:
    assert policy.org_name == "Acme"
    assert 1 <= policy.max_attempts <= 4


def test_policies_refuse_unknown_settings_at_once() -> None:
    with pytest.raises(TypeError, match="max_attempt"):
        ks.policies(max_attempt=2)


@pytest.mark.parametrize("locale", available_locales())
@given(data=st.data())
def test_keyword_replies_mean_their_intent_for_their_locale(
    locale: str, data: st.DataObject
) -> None:
    intent = data.draw(
        st.sampled_from(
            [Intent.CONSENT, Intent.STOP, Intent.START, Intent.HELP, Intent.DECLINE]
        )
    )
    try:
        strategy = ks.keyword_replies(locale, [intent])
    except ValueError:  # this pack has no such word (fr-CA inherits fr's)
        return
    text = data.draw(strategy)
    assert parse_reply(text, locale).intent is intent, text


def test_keyword_replies_of_an_empty_choice_say_so() -> None:
    with pytest.raises(ValueError, match="no keyword"):
        ks.keyword_replies("fr-CA", [Intent.REACTION])


@given(ks.replies("fr", intents=[Intent.STOP]))
def test_replies_with_intents_are_only_those(text: str) -> None:
    assert parse_reply(text, "fr").intent is Intent.STOP


POLICY = Policy(org_name="Acme")
PENDING = decide(
    Consent.new(CONTACT), RequestOptIn(at=kit.T0 - timedelta(days=1)), POLICY
).consent


@given(ks.replies(hostile=True), ks.moments())
def test_hostile_replies_never_break_decide(text: str, at: datetime) -> None:
    inbound = Inbound(text=text, at=at, message_id="SM9")
    head = decide(PENDING, inbound, POLICY).consent
    assert head.state in (
        ConsentState.PENDING,
        ConsentState.STOPPED,
        ConsentState.OPTED_IN,
    )


@given(ks.hostile_texts())
def test_hostile_texts_are_str(text: str) -> None:
    assert isinstance(text, str)
    assert isinstance(parse_reply(text).intent, Intent)


@given(ks.moments(days=1))
def test_moments_stay_in_their_window(at: datetime) -> None:
    assert at.utcoffset() is not None
    assert kit.T0 <= at <= kit.T0 + timedelta(days=1)


@given(ks.inputs())
def test_inputs_are_valid_inputs(inp: object) -> None:
    assert getattr(inp, "kind", None) in {
        "request_opt_in",
        "inbound",
        "send_text",
        "attest",
        "revoke",
    }


@given(ks.consents(max_steps=6))
def test_consents_are_heads_decide_can_reach(head: object) -> None:
    assert isinstance(head, Consent)
    assert head.contact in ks.CONTACTS


@given(ks.conversations(policy=Policy(org_name="Acme", confirm_stop=False)))
def test_conversations_verify(conversation: ks.Conversation) -> None:
    policy, head, log = conversation
    assert conversation.policy is policy
    assert head.version == len(log)
    assert verify(head.contact, log, head) == head


@given(ks.scripts(locale="fr"))
def test_scripts_are_in_time_order_with_distinct_ids(script: list[Input]) -> None:
    assert isinstance(script[0], RequestOptIn)
    times = [s.at for s in script]
    assert times == sorted(times)
    ids = [s.message_id for s in script if isinstance(s, Inbound)]
    assert len(ids) == len(set(ids))
    policy = Policy(org_name="Acme", attestation_methods={"email"})
    service = kit.memory_service(policy)
    for step in script:  # what a host does with a script
        try:
            if isinstance(step, Inbound):
                service.receive(
                    CONTACT, step.text, message_id=step.message_id, at=step.at
                )
            else:
                decide(service.get(CONTACT), step, policy)  # agent actions: refusals ok
        except OptinError:
            pass


@given(ks.any_text(max_size=5), ks.decorations())
def test_text_helpers_draw_str(text: str, decoration: str) -> None:
    assert len(text) <= 5
    assert isinstance(decoration, str)
