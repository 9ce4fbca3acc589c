"""What each event records and what a stop cancels, pinned rule by rule.

The rules (docs/rules.md: "Inputs", "The head and the log", "Stops"):

- host misuse raises an error that says exactly what was refused and carries
  what it documents: ``ContactStopped`` the contact (an attestation, an
  imported opt-in of a stopped contact), ``PolicyError`` the setting (a
  method a ``Policy`` subclass puts below ``express``);
- every event records who acted (``contact``, ``delivery``,
  ``provider:<name>``, the agent), and an import or a provider's opt-out its
  method, evidence, message id and reason, word for word;
- an import that changes nothing returns no message, no event, no reply and
  the ``UNCHANGED`` outcome;
- a stop cancels exactly this contact's queued messages of the kinds a
  stopped contact may not get (``cancel_queued``), on a ``cancel`` event with
  the stop's actor, the policy's id and version, chained under the policy's
  log key; a provider's opt-out withdraws every kind, a revoke of a stopped
  contact none (``withdrawn_by``);
- a message's key is ``idempotency_key(contact, version, position,
  namespace)``; every event is chained under ``Policy.log_key``; a delayed
  input keeps its own time as ``input_at``;
- the head carries every timestamp forward; ``stopped_at`` is the time of the
  stop in force and never moves back; the loop guard remembers the last
  ``AUTO_REPLY_MEMORY`` automatic replies, and the reply that got a reminder
  only (a lone surrogate included).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import attrs
import pytest

from optin_core import (
    Attest,
    Consent,
    ConsentLog,
    ConsentState,
    ContactStopped,
    Decision,
    Import,
    Inbound,
    Input,
    MessageKind,
    Mode,
    Outcome,
    Outgoing,
    Policy,
    PolicyError,
    ProviderOptOut,
    RecordError,
    RequestOptIn,
    Revoke,
    SendText,
    Trigger,
    cancel_queued,
    cancelled_by_stop,
    decide,
    event_digest,
    verify,
)
from optin_core._log import check_extension
from optin_core._records import (
    AUTO_REPLY_MEMORY,
    MessageExpired,
    MessageFailed,
    idempotency_key,
)

from .flows import CONTACT, Flow, at, policy

OTHER = "+15555550199"
DAY = 24 * 60
KEY = b"k" * 32

#: What a stop makes undeliverable: every kind but its own confirmation and
#: HELP answers (docs/rules.md, "Stops"); a provider's opt-out, every kind.
STOP_CANCELS = frozenset(MessageKind) - {
    MessageKind.STOP_CONFIRMATION,
    MessageKind.HELP,
}
EVERY_KIND = frozenset(MessageKind)


def _stopped(pol: Policy | None = None) -> Flow:
    flow = Flow(pol)
    flow.request(0)
    flow.reply("STOP", 1)
    assert flow.consent.state is ConsentState.STOPPED
    return flow


def _opted_in(pol: Policy | None = None) -> Flow:
    flow = Flow(pol)
    flow.request(0)
    flow.reply("yes", 1)
    assert flow.consent.state is ConsentState.OPTED_IN
    return flow


def _import(state: ConsentState, **kw: object) -> Import:
    fields: dict[str, object] = {
        "at": at(5),
        "state": state,
        "source": "crm",
        "by": "importer",
        "import_id": "row-1",
    }
    fields.update(kw)
    return Import(**fields)  # type: ignore[arg-type]


# -- host misuse: the errors say exactly what was refused ------------------


def _refusal(what: str) -> str:
    return (
        f"contact {CONTACT!r} has opted out, so {what} is refused; only the "
        "contact can restart messaging by texting START"
    )


def test_an_attestation_of_a_stopped_contact_is_refused_naming_it() -> None:
    flow = _stopped()
    attest = Attest(method="email", at=at(5), by="agent-7", evidence="mail-42")
    with pytest.raises(ContactStopped) as info:
        decide(flow.consent, attest, policy(attestation_methods=["email"]))
    # The exact message (not a search): the host shows it to the agent.
    assert str(info.value) == _refusal("an out-of-band attestation")
    assert info.value.contact == CONTACT


def test_an_imported_opt_in_of_a_stopped_contact_is_refused_naming_it() -> None:
    flow = _stopped()
    with pytest.raises(ContactStopped) as info:
        decide(flow.consent, _import(ConsentState.OPTED_IN), flow.policy)
    assert str(info.value) == _refusal("an imported opt-in")
    assert info.value.contact == CONTACT


class _FaxGivesDisclosed(Policy):
    """A subclass that maps an accepted method below ``express``: only a
    subclass can (the constructor refuses such a mapping)."""

    def attestation_level(self, method: str) -> str:
        return "disclosed"


def test_a_subclass_attestation_below_express_is_a_policy_error() -> None:
    pol = _FaxGivesDisclosed(org_name="Hearsay", attestation_methods=["fax"])
    flow = Flow(pol)
    flow.request(0)
    attest = Attest(method="fax", at=at(1), by="agent-7", evidence="fax-9")
    # "disclosed" is on the ladder, but an attestation is consent: express
    # at least. The error names the setting the host must fix.
    with pytest.raises(PolicyError) as info:
        decide(flow.consent, attest, pol)
    assert info.value.setting == "attestation_level"
    assert str(info.value) == (
        "Policy.attestation_level: the method 'fax' gives 'disclosed', which is "
        "not a level of the ladder at least 'express'"
    )


# -- provenance: who acted, and the evidence, on every event ---------------


def test_a_reply_is_recorded_as_the_contacts_with_its_message_id() -> None:
    flow = Flow()
    flow.request(0)
    event = flow.reply("yes", 1, message_id="SM1").events[0]
    assert (event.actor, event.message_id) == ("contact", "SM1")
    assert (event.method, event.evidence) == (None, None)


def test_a_delivery_failure_is_recorded_as_the_delivery_layers() -> None:
    flow = _opted_in()
    stop = flow.reply("STOP", 2)
    key = stop.outgoing[0].key
    expired = flow.apply(MessageExpired(at=at(30), key=key)).events[0]
    assert (expired.trigger, expired.actor) == (Trigger.EXPIRE, "delivery")
    assert expired.cancelled == (key,)
    failed = flow.apply(
        MessageFailed(at=at(31), key="k-2", attempts=5, error="timeout")
    ).events[0]
    assert (failed.trigger, failed.actor) == (Trigger.DEAD_LETTER, "delivery")
    assert failed.reason == "given up after 5 failed attempts: timeout"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "twilio opt-out 21610"),
        ("k-1", "twilio opt-out 21610 (sending k-1)"),
    ],
    ids=["no-send", "refused-send"],
)
def test_a_provider_opt_out_records_the_provider_code_and_refused_send(
    key: str | None, reason: str
) -> None:
    flow = _opted_in()
    opt_out = ProviderOptOut(at=at(5), provider="twilio", code="21610", key=key)
    event = flow.apply(opt_out).events[0]
    assert (event.trigger, event.actor, event.reason) == (
        Trigger.REVOKE,
        "provider:twilio",
        reason,
    )
    assert event.sent == ()


def test_an_import_records_source_actor_row_and_unknown_since() -> None:
    flow = Flow()
    event = flow.apply(_import(ConsentState.OPTED_IN)).events[0]
    assert event.trigger is Trigger.IMPORT_OPT_IN
    assert (event.actor, event.message_id, event.method) == (
        "importer",
        "row-1",
        "import:crm",
    )
    # No date from the source: the evidence says so in words.
    assert event.evidence == "opted_in since unknown"
    assert event.sent == ()


def test_an_import_records_since_and_the_rows_own_evidence() -> None:
    flow = _opted_in()
    since = at(-DAY)
    row = _import(ConsentState.STOPPED, since=since, evidence="ticket 12")
    event = flow.apply(row).events[0]
    assert event.trigger is Trigger.IMPORT_STOP
    assert event.evidence == f"stopped since {since.isoformat()}; ticket 12"
    assert event.sent == ()


def test_an_import_that_changes_nothing_returns_no_message_event_or_reply() -> None:
    stopped = _stopped().consent
    opted_in = _opted_in().consent
    for head, state in (
        (stopped, ConsentState.STOPPED),
        (opted_in, ConsentState.OPTED_IN),
    ):
        decision = decide(head, _import(state), policy())
        assert decision.consent is head
        assert (decision.outgoing, decision.events, decision.reply) == ((), (), None)
        assert decision.outcome is Outcome.UNCHANGED
        assert not decision.changed


# -- what a stop cancels --------------------------------------------------


def _queued_before_stop(pol: Policy) -> tuple[Flow, list[Outgoing]]:
    """An opted-in contact with a request, a confirmation, a text and a
    HELP answer still queued, and another contact's text in the same
    queue."""
    flow = Flow(pol)
    queued = list(flow.request(0).outgoing)
    queued += flow.reply("yes", 1).outgoing
    queued += flow.apply(SendText(body="Your visit is at 3pm", at=at(2))).outgoing
    queued += flow.reply("HELP", 3).outgoing
    queued.append(
        Outgoing(
            contact=OTHER, kind=MessageKind.TEXT, text="hi", locale="en", key="other"
        )
    )
    return flow, queued


@pytest.mark.parametrize(
    ("stop", "actor", "cancelled"),
    [
        # A stop leaves the HELP answer (and its own confirmation) to go.
        ("STOP", "contact", 3),
        (Revoke(at=at(4), by="compliance", reason="call"), "compliance", 3),
        # The provider would refuse them all: the HELP answer goes too.
        (
            ProviderOptOut(at=at(4), provider="twilio", code="21610"),
            "provider:twilio",
            4,
        ),
    ],
    ids=["reply", "revoke", "provider"],
)
def test_a_stop_cancels_this_contacts_queued_kinds_on_a_cancel_event(
    stop: str | Revoke | ProviderOptOut,
    actor: str,
    cancelled: int,
) -> None:
    pol = policy(policy_id="acme-sms", policy_version="7", log_key=KEY)
    flow, queued = _queued_before_stop(pol)
    decision = flow.reply(stop, 4) if isinstance(stop, str) else flow.apply(stop)
    done = cancel_queued(decision, queued, pol)
    stopped, cancel = done.events
    assert stopped == decision.events[0]
    assert [(m.contact, m.kind) for m in queued] == [
        (CONTACT, MessageKind.OPT_IN_REQUEST),
        (CONTACT, MessageKind.OPT_IN_CONFIRMATION),
        (CONTACT, MessageKind.TEXT),
        (CONTACT, MessageKind.HELP),
        (OTHER, MessageKind.TEXT),
    ]
    # Only this contact's messages, only of kinds the stop withdraws, in the
    # order the store listed them: never another contact's text.
    assert cancel.cancelled == tuple(m.key for m in queued[:cancelled])
    assert (cancel.trigger, cancel.to_state) == (Trigger.CANCEL, ConsentState.STOPPED)
    # The cancel is the stop's doing: its actor, input and time.
    assert (cancel.actor, cancel.input, cancel.input_time) == (
        actor,
        stopped.input,
        stopped.input_time,
    )
    assert cancel.locale == stopped.locale
    assert (cancel.policy_id, cancel.policy_version) == ("acme-sms", "7")
    assert cancel.digest == event_digest(CONTACT, cancel, log_key=KEY)
    assert verify(CONTACT, (*flow.log, cancel), done.consent, log_key=KEY)
    # The rest of the decision is the stop's.
    assert (done.outgoing, done.reply) == (decision.outgoing, decision.reply)


def test_a_decision_without_events_cancels_nothing() -> None:
    flow, queued = _queued_before_stop(policy())
    flow.reply("STOP", 4)
    again = flow.reply("STOP", 5)  # already stopped: nothing happens
    assert again.events == ()
    assert cancel_queued(again, queued, flow.policy) is again


def test_a_decision_that_stops_no_one_cancels_nothing() -> None:
    flow, queued = _queued_before_stop(policy())
    help_answer = flow.reply("HELP", 4)
    assert cancel_queued(help_answer, queued, flow.policy) is help_answer


def test_a_decision_that_leaves_the_contact_texting_cancels_nothing() -> None:
    # A host assembling its own decision (a stop, then a restart): the
    # contact ends opted in, so nothing queued is cancelled (and no cancel
    # is fired on an opted-in head, which the machine has no move for).
    flow, queued = _queued_before_stop(policy())
    stop = flow.reply("STOP", 4).events[0]
    restart = flow.reply("START", 5).events[0]
    assembled = Decision(consent=flow.consent, events=(stop, restart))
    assert assembled.withdraws == STOP_CANCELS
    assert cancel_queued(assembled, queued, flow.policy) is assembled


def test_a_provider_opt_out_withdraws_every_kind_even_when_stopped() -> None:
    for flow in (_opted_in(), _stopped()):
        decision = flow.apply(ProviderOptOut(at=at(5), provider="x", code="1"))
        assert cancelled_by_stop(decision) == EVERY_KIND
        assert decision.withdraws == EVERY_KIND


def test_a_revoke_withdraws_what_a_stop_does_and_nothing_once_stopped() -> None:
    revoke = Revoke(at=at(5), by="compliance", reason="call")
    assert _opted_in().apply(revoke).withdraws == STOP_CANCELS
    # Already stopped: the stop before it withdrew the queue already.
    assert _stopped().apply(revoke).withdraws == frozenset()


def test_a_decision_that_does_not_stop_withdraws_nothing() -> None:
    flow = Flow()
    assert flow.request(0).withdraws == frozenset()
    assert flow.reply("what?", 1).withdraws == frozenset()
    assert flow.reply("yes", 2).withdraws == frozenset()


# -- keys and the chain ---------------------------------------------------


@pytest.mark.parametrize("namespace", ["", "tenant-a"])
def test_every_message_key_is_the_contacts_version_position_and_namespace(
    namespace: str,
) -> None:
    head = Consent.new(CONTACT)
    steps: list[Input] = [
        RequestOptIn(at=at(0)),
        Attest(method="email", at=at(1), by="agent-7", evidence="mail-42"),
        SendText(body="Your visit is at 3pm", at=at(2)),
        Revoke(at=at(3), by="compliance", reason="call"),
    ]
    pol = policy(attestation_methods=["email"])
    for step in steps:
        decision = decide(head, step, pol, namespace=namespace)
        head = decision.consent
        for position, message in enumerate(decision.outgoing):
            assert message.key == idempotency_key(
                CONTACT, head.version, position, namespace
            )


def test_keys_differ_between_contacts_and_namespaces() -> None:
    pol = policy()
    keys = {
        decide(Consent.new(c), RequestOptIn(at=at(0)), pol, namespace=ns)
        .outgoing[0]
        .key
        for c in (CONTACT, OTHER)
        for ns in ("", "tenant-a", "tenant-b")
    }
    assert len(keys) == 6


def test_every_event_is_chained_under_the_policys_log_key() -> None:
    pol = policy(attestation_methods=["email"], log_key=KEY)
    flow = Flow(pol)
    flow.request(0)
    flow.reply("what?", 1)
    flow.apply(Attest(method="email", at=at(2), by="agent-7", evidence="mail-42"))
    text = flow.apply(SendText(body="Your visit is at 3pm", at=at(3)))
    flow.apply(
        MessageFailed(at=at(4), key=text.outgoing[0].key, attempts=5, error="503")
    )
    flow.apply(Revoke(at=at(5), by="compliance", reason="call"))
    flow.apply(ProviderOptOut(at=at(6), provider="twilio", code="21610"))
    for event in flow.log:
        assert event.digest == event_digest(CONTACT, event, log_key=KEY)
    assert verify(CONTACT, flow.log, flow.consent, log_key=KEY) == flow.consent
    with pytest.raises(RecordError):
        verify(CONTACT, flow.log, flow.consent)


def test_an_input_older_than_the_last_event_keeps_its_time_as_input_at() -> None:
    flow = Flow()
    flow.request(10)
    assert flow.events[-1].input_at is None
    flow.reply("what?", 12)
    revoke = flow.apply(Revoke(at=at(11), by="compliance", reason="call")).events[0]
    assert (revoke.at, revoke.input_at) == (at(12), at(11))
    assert flow.consent.stopped_at == at(11)


# -- the head: timestamps carried forward ---------------------------------


def test_request_times_are_kept_by_later_events_and_moved_by_a_resend() -> None:
    flow = Flow()
    flow.request(0)
    flow.reply("what?", 1)
    assert (flow.consent.requested_at, flow.consent.last_requested_at) == (
        at(0),
        at(0),
    )
    flow.request(DAY)
    flow.reply("what?", DAY + 1)
    # A resend continues the cycle: it moves the last request, not its start.
    assert (flow.consent.requested_at, flow.consent.last_requested_at) == (
        at(0),
        at(DAY),
    )
    assert flow.consent.attempts == 2


def test_the_disclaimer_time_is_set_once_and_kept() -> None:
    flow = Flow(policy(Mode.DISCLAIMER))
    flow.request(0)
    assert flow.consent.disclosed_at == at(0)
    flow.apply(SendText(body="Your visit is at 3pm", at=at(1)))
    flow.reply("yes", 2)
    assert flow.consent.state is ConsentState.OPTED_IN
    assert flow.consent.disclosed_at == at(0)


def test_a_contact_never_stopped_has_no_stop_time() -> None:
    flow = Flow()
    flow.request(0)
    flow.reply("HELP", 1)
    reminder = flow.reply("what?", 2).outgoing[0]
    flow.apply(MessageFailed(at=at(3), key=reminder.key, attempts=5, error="503"))
    flow.reply("yes", 4)
    flow.apply(SendText(body="Your visit is at 3pm", at=at(5)))
    assert all(e.to_state is not ConsentState.STOPPED for e in flow.log)
    assert flow.consent.stopped_at is None


def test_a_restart_keeps_the_time_of_the_stop_it_undid() -> None:
    flow = _stopped()
    flow.reply("START", 2)
    assert flow.consent.state is ConsentState.OPTED_IN
    assert flow.consent.stopped_at == at(1)


def test_a_later_stop_records_its_own_time_even_before_an_earlier_one() -> None:
    # The contact sent STOP 5, START 7, STOP 10, START 20; the network
    # delivered STOP 10, START 20, then the delayed STOP 5 and START 7.
    flow = _opted_in()
    flow.reply("STOP", 10)
    flow.reply("START", 20)
    flow.reply("STOP", 5)  # a delayed STOP still stops
    # The stop in force is the one at 5, not the one a restart undid...
    assert flow.consent.stopped_at == at(5)
    # ... so the START sent after it restarts, as the contact last asked.
    assert flow.reply("START", 7).events[0].trigger is Trigger.RESTART
    assert flow.consent.state is ConsentState.OPTED_IN


def test_a_second_revocation_never_moves_the_stop_back() -> None:
    flow = Flow()
    flow.request(0)
    flow.reply("STOP", 5)
    flow.apply(Revoke(at=at(3), by="compliance", reason="call"))  # delayed
    assert flow.consent.stopped_at == at(5)
    # A START sent before the latest stop cannot undo it.
    assert flow.reply("START", 4).outcome is Outcome.STALE
    flow.apply(Revoke(at=at(15), by="compliance", reason="letter"))
    assert flow.consent.stopped_at == at(15)


def test_the_loop_guard_remembers_the_last_automatic_replies_only() -> None:
    flow = _opted_in()
    # HELP two hours apart: never a loop (one per hour-long window), and each
    # answer is an automatic reply the guard counts.
    times = [at(60 + 120 * i) for i in range(AUTO_REPLY_MEMORY + 8)]
    for when in times:
        flow.reply("HELP", (when - at(0)) / timedelta(minutes=1))
        assert flow.last is not None
        assert [m.kind for m in flow.last.outgoing] == [MessageKind.HELP]
    assert flow.consent.auto_replies == tuple(times[-AUTO_REPLY_MEMORY:])


def test_only_a_reminder_records_the_reply_it_answered() -> None:
    flow = Flow()
    flow.request(0)
    flow.reply("what?", 1)
    assert flow.consent.reminded_reply is not None
    for text, minutes in (("HELP", 2), ("yes", 3), ("STOP", 4)):
        flow.reply(text, minutes)
        assert flow.consent.reminded_reply is None, text


def test_a_repeated_reply_with_a_lone_surrogate_pauses_the_replies() -> None:
    # Contacts' texts may carry lone surrogates (a split emoji): the loop
    # guard still recognises the same reply the second time.
    text = "hm \ud83d ok"
    flow = Flow()
    flow.request(0)
    assert flow.reply(text, 1).events[0].trigger is Trigger.REMIND
    basis = text.strip().casefold().encode("utf-8", "surrogatepass")
    assert flow.consent.reminded_reply == hashlib.sha256(basis).hexdigest()
    assert flow.reply(text, 2).events[0].trigger is Trigger.PAUSE


# -- found while pinning stopped_at: events that are not stops move it -----


def test_a_help_answer_while_stopped_does_not_move_the_stop() -> None:
    # The contact sent STOP 1, START 2, HELP 3; START arrived last.
    flow = _stopped()
    flow.reply("HELP", 3)
    assert flow.consent.stopped_at == at(1)
    assert flow.reply("START", 2).events[0].trigger is Trigger.RESTART


def test_an_expired_stop_confirmation_does_not_move_the_stop() -> None:
    flow = _opted_in()
    key = flow.reply("STOP", 2).outgoing[0].key
    flow.apply(MessageExpired(at=at(30), key=key))  # an outage
    assert flow.consent.stopped_at == at(2)
    # The START the contact sent at 3, delivered after the outage.
    assert flow.reply("START", 3).events[0].trigger is Trigger.RESTART


def test_a_head_saved_before_0_3_with_a_later_stop_time_still_verifies() -> None:
    # 0.1.0 and 0.2.0 moved stopped_at to the HELP answer at 3: their heads
    # are verified against the log, and the replay has the stop's own time.
    flow = _stopped()
    flow.reply("HELP", 3)
    saved = attrs.evolve(flow.consent, stopped_at=at(3))
    assert verify(CONTACT, flow.log, saved) == flow.consent
    assert ConsentLog(head=saved, events=flow.log).verify() == flow.consent
    exported = ConsentLog(head=saved, events=flow.log).to_dict()
    assert ConsentLog.from_dict(exported).head == saved
    # Decisions go on from such a head (a store checks them against it).
    d = decide(saved, Inbound(text="START", at=at(2), message_id="late"), flow.policy)
    assert d.outcome is Outcome.STALE
    assert d.consent.state is ConsentState.STOPPED
    d = decide(saved, Inbound(text="HELP", at=at(4), message_id="m9"), flow.policy)
    assert [e.trigger for e in d.events] == [Trigger.HELP]
    assert d.consent.stopped_at == at(3)
    check_extension(saved, d.consent, d.events)
    # The whole log verifies with the head saved after the upgrade, whose
    # stop time is 0.2.0's though the last event is 0.3.0's.
    assert verify(CONTACT, (*flow.log, *d.events), d.consent) == attrs.evolve(
        d.consent, stopped_at=at(1)
    )


@pytest.mark.parametrize("minutes", [0, 2, 4])
def test_no_other_stop_time_than_the_replay_or_0_2_0_s_verifies(minutes: int) -> None:
    flow = _stopped()
    flow.reply("HELP", 3)
    edited = attrs.evolve(flow.consent, stopped_at=at(minutes))
    with pytest.raises(RecordError) as refused:
        verify(CONTACT, flow.log, edited)
    assert refused.value.field == "stopped_at"
    assert refused.value.contact == CONTACT


def test_a_stop_time_after_the_stop_period_is_refused() -> None:
    # After STOP at 1 and START at 2 the stop time stays 1 in every
    # version: the restart is not an event of the stop period.
    flow = Flow()
    flow.request(0)
    flow.reply("STOP", 1)
    flow.reply("START", 2)
    assert flow.consent.stopped_at == at(1)
    flow.reply("what?", 3)
    for moment in {e.input_time for e in flow.log} - {at(1)}:
        edited = attrs.evolve(flow.consent, stopped_at=moment)
        with pytest.raises(RecordError) as refused:
            verify(CONTACT, flow.log, edited)
        assert refused.value.field == "stopped_at"


def test_a_revoke_after_a_stop_moves_the_stop_as_before() -> None:
    # A revoke is a stop: a START sent between the two stays stale.
    flow = _stopped()
    flow.apply(Revoke(at=at(3), by="agent:7", reason="asked by phone"))
    assert flow.consent.stopped_at == at(3)
    assert flow.reply("START", 2).outcome is Outcome.STALE
    assert flow.consent.state is ConsentState.STOPPED
