"""The declaration is the single source of truth: the table, docs and effects agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from statemachine.exceptions import TransitionNotAllowed

from optin_core import ConsentMachine, ConsentState, MessageKind, Trigger, mermaid
from optin_core._declaration import _compile, compile_declaration
from optin_core._machine import EFFECTS, TRANSITIONS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "machine.md"


def oracle(state: ConsentState, trigger: Trigger) -> ConsentState | None:
    """What a live python-statemachine instance does with one event."""
    machine = ConsentMachine(start_value=state.value)
    try:
        machine.send(trigger.value)
    except TransitionNotAllowed:
        return None
    return ConsentState(machine.current_state_value)


@pytest.mark.parametrize("state", list(ConsentState))
@pytest.mark.parametrize("trigger", list(Trigger))
def test_table_agrees_with_declaration_on_every_pair(
    state: ConsentState, trigger: Trigger
) -> None:
    assert TRANSITIONS.get((state, trigger)) is oracle(state, trigger)


@given(st.sampled_from(list(ConsentState)), st.lists(st.sampled_from(list(Trigger))))
def test_table_agrees_with_declaration_on_walks(
    start: ConsentState, triggers: list[Trigger]
) -> None:
    machine = ConsentMachine(start_value=start.value)
    state = start
    for trigger in triggers:
        expected = TRANSITIONS.get((state, trigger))
        if expected is None:
            with pytest.raises(TransitionNotAllowed):
                machine.send(trigger.value)
            continue
        machine.send(trigger.value)
        state = expected
        assert ConsentState(machine.current_state_value) is state


def test_table_is_immutable() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[ConsentState.STOPPED, Trigger.TEXT] = ConsentState.OPTED_IN  # type: ignore[index]


def test_stopped_can_only_be_left_by_restart() -> None:
    exits = {
        t
        for (s, t), target in TRANSITIONS.items()
        if s is ConsentState.STOPPED and target is not ConsentState.STOPPED
    }
    assert exits == {Trigger.RESTART}


def test_nothing_but_stop_confirmation_and_help_can_reach_a_stopped_contact() -> None:
    kinds = {
        EFFECTS[t]
        for (s, t), target in TRANSITIONS.items()
        if target is ConsentState.STOPPED and EFFECTS[t] is not None
    }
    assert kinds == {MessageKind.STOP_CONFIRMATION, MessageKind.HELP}


def test_every_state_can_be_stopped() -> None:
    for state in ConsentState:
        assert TRANSITIONS[state, Trigger.REVOKE] is ConsentState.STOPPED


def test_compile_refuses_a_machine_with_a_missing_state() -> None:
    from statemachine import State, StateMachine

    class Partial(StateMachine):
        new = State(value="new", initial=True)
        pending = State(value="pending")
        request = new.to(pending)
        resend = pending.to.itself()

    with pytest.raises(RuntimeError, match="differ from ConsentState"):
        _compile(Partial)


def test_mermaid_draws_every_transition() -> None:
    diagram = mermaid()
    assert diagram.startswith("stateDiagram-v2\n")
    edges = [
        line for line in diagram.splitlines() if "-->" in line and "[*]" not in line
    ]
    assert len(edges) == len(TRANSITIONS)
    assert "PENDING --> OPTED_IN: consent / opt_in_confirmation" in diagram


def test_docs_diagram_is_generated_from_the_declaration() -> None:
    # docs/machine.md embeds mermaid(); regenerate it with
    # `python docs/generate.py` when the machine changes.
    assert mermaid() in DOCS.read_text(encoding="utf-8")


def test_the_imported_table_is_the_compiled_declaration() -> None:
    # The library imports the generated ``_table.py``, not python-statemachine;
    # the declaration stays the one source (``python docs/generate.py``).
    compiled = compile_declaration()
    assert dict(TRANSITIONS) == dict(compiled)
    assert list(TRANSITIONS) == list(compiled)  # the declaration's order too
