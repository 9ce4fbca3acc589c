"""Model-based test: ``decide`` against the declared machine and the invariants."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from optin_core import (
    AuditEvent,
    Consent,
    ConsentMachine,
    ConsentState,
    Input,
    MessageKind,
    OptinError,
    Policy,
    decide,
    replay,
    verify,
)

from .strategies import inputs, policies

STOPPED = ConsentState.STOPPED


class DecideAgainstTheDeclaration(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.consent = Consent.new("+15555550100")
        self.log: list[AuditEvent] = []
        self.oracle = ConsentMachine()
        self.policy = Policy(org_name="Hearsay")

    @initialize(policy=policies)
    def choose_policy(self, policy: Policy) -> None:
        self.policy = policy

    @rule(inp=inputs(), switch=st.one_of(st.none(), policies))
    def apply(self, inp: Input, switch: Policy | None) -> None:
        if switch is not None:  # organisations change their policy mid-flight
            self.policy = switch
        before = self.consent
        try:
            decision = decide(before, inp, self.policy)
        except OptinError:
            return
        assert decision.consent.version == before.version + len(decision.events)
        assert decision.outgoing == tuple(m for e in decision.events for m in e.sent)
        if not decision.events:
            assert decision.consent is before
        for event in decision.events:
            # the declared machine, run live, must take the same transition
            assert self.oracle.current_state_value == event.from_state.value
            self.oracle.send(event.trigger)
            assert self.oracle.current_state_value == event.to_state.value
        self.consent = decision.consent
        self.log.extend(decision.events)

    @invariant()
    def state_matches_the_declared_machine(self) -> None:
        assert self.consent.state.value == self.oracle.current_state_value

    @invariant()
    def version_counts_events(self) -> None:
        assert self.consent.version == len(self.log)

    @invariant()
    def replay_equals_record(self) -> None:
        assert replay(self.consent.contact, self.log) == self.consent
        assert verify(self.consent.contact, self.log, self.consent) == self.consent

    @invariant()
    def stopped_contacts_only_get_the_confirmation_and_help(self) -> None:
        for event in self.log:
            kinds = {m.kind for m in event.sent}
            if event.from_state is STOPPED and event.to_state is STOPPED:
                assert kinds <= {MessageKind.HELP}
            elif event.to_state is STOPPED:
                assert kinds <= {MessageKind.STOP_CONFIRMATION}

    @invariant()
    def at_most_one_stop_confirmation_per_stop(self) -> None:
        confirmations = 0
        for event in self.log:
            if event.to_state is not STOPPED:
                confirmations = 0
                continue
            confirmations += sum(
                m.kind is MessageKind.STOP_CONFIRMATION for m in event.sent
            )
            assert confirmations <= 1

    @invariant()
    def texts_only_go_where_allowed(self) -> None:
        for event in self.log:
            if any(m.kind is MessageKind.TEXT for m in event.sent):
                assert event.to_state in (ConsentState.OPTED_IN, ConsentState.DISCLOSED)


TestDecideAgainstTheDeclaration = DecideAgainstTheDeclaration.TestCase
