"""The machine's one declaration, as a python-statemachine ``StateMachine``.

:class:`ConsentMachine` declares every transition a consent record can make.
It is not imported on the hot path (python-statemachine pulls in asyncio,
which would triple the library's import time): ``docs/generate.py`` compiles
it into ``_table.py``, which :mod:`optin_core._machine` reads, and a test
checks that the generated table equals the compiled declaration. The
declaration also draws the docs' diagram (:func:`mermaid`) and is the oracle
of the model-based tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from statemachine import State, StateMachine

from ._enums import ConsentState, Trigger
from ._machine import EFFECTS

__all__ = ["ConsentMachine", "compile_declaration", "mermaid"]


class ConsentMachine(StateMachine):
    """The declaration: every transition a consent record can make.

    Guards (resend limits, reminder caps, ordering, policy switches) are not
    here: :func:`optin_core.decide` evaluates them and picks the trigger, so the
    table stays a pure function of ``(state, trigger)``.
    """

    new = State("New", value=ConsentState.NEW.value, initial=True)
    pending = State("Pending", value=ConsentState.PENDING.value)
    opted_in = State("Opted in", value=ConsentState.OPTED_IN.value)
    disclosed = State("Disclosed", value=ConsentState.DISCLOSED.value)
    stopped = State("Stopped", value=ConsentState.STOPPED.value)

    request = new.to(pending) | disclosed.to(pending)
    resend = pending.to(pending, internal=True)
    disclose = new.to(disclosed) | pending.to(disclosed)
    consent = pending.to(opted_in)
    upgrade = disclosed.to(opted_in)
    restart = stopped.to(opted_in)
    stop = (
        new.to(stopped)
        | pending.to(stopped)
        | opted_in.to(stopped)
        | disclosed.to(stopped)
    )
    decline = pending.to(stopped)
    revoke = (
        new.to(stopped)
        | pending.to(stopped)
        | opted_in.to(stopped)
        | disclosed.to(stopped)
        | stopped.to(stopped, internal=True)
    )
    attest = (
        new.to(opted_in)
        | pending.to(opted_in)
        | disclosed.to(opted_in)
        | opted_in.to(opted_in, internal=True)
    )
    remind = pending.to(pending, internal=True)
    help = (
        new.to(new, internal=True)
        | pending.to(pending, internal=True)
        | opted_in.to(opted_in, internal=True)
        | disclosed.to(disclosed, internal=True)
        | stopped.to(stopped, internal=True)
    )
    text = opted_in.to(opted_in, internal=True) | disclosed.to(disclosed, internal=True)
    pause = (
        new.to(new, internal=True)
        | pending.to(pending, internal=True)
        | opted_in.to(opted_in, internal=True)
        | disclosed.to(disclosed, internal=True)
        | stopped.to(stopped, internal=True)
    )
    cancel = stopped.to(stopped, internal=True)
    signup = new.to(opted_in)
    expire = (
        new.to(new, internal=True)
        | pending.to(pending, internal=True)
        | opted_in.to(opted_in, internal=True)
        | disclosed.to(disclosed, internal=True)
        | stopped.to(stopped, internal=True)
    )
    dead_letter = (
        new.to(new, internal=True)
        | pending.to(pending, internal=True)
        | opted_in.to(opted_in, internal=True)
        | disclosed.to(disclosed, internal=True)
        | stopped.to(stopped, internal=True)
    )
    # Imports (another system's consent list): a stop always applies; an
    # opt-in never leaves STOPPED (only the contact restarts) and is not
    # needed where the contact already opted in.
    import_stop = (
        new.to(stopped)
        | pending.to(stopped)
        | opted_in.to(stopped)
        | disclosed.to(stopped)
    )
    import_opt_in = new.to(opted_in) | pending.to(opted_in) | disclosed.to(opted_in)


def compile_declaration(
    machine: type[StateMachine] | None = None,
) -> Mapping[tuple[ConsentState, Trigger], ConsentState]:
    """The declaration compiled into ``(state, trigger) -> state``, checked:
    every state declared, one target per pair, every trigger with a
    transition and an effect. ``docs/generate.py`` writes it to ``_table.py``.
    """
    return _compile(ConsentMachine if machine is None else machine)


def _compile(
    machine: type[StateMachine],
) -> Mapping[tuple[ConsentState, Trigger], ConsentState]:
    table: dict[tuple[ConsentState, Trigger], ConsentState] = {}
    declared = {s.value for s in machine.states}
    if declared != {s.value for s in ConsentState}:
        raise RuntimeError(f"machine states {declared} differ from ConsentState")
    for state in machine.states:
        for transition in state.transitions:
            source = ConsentState(transition.source.value)
            target = ConsentState(transition.target.value)
            for event in transition.events:
                key = (source, Trigger(str(event)))
                if table.get(key, target) is not target:
                    raise RuntimeError(
                        f"{key} has two targets; guards belong in decide"
                    )
                table[key] = target
    missing = set(Trigger) - {t for _, t in table}
    if missing or set(EFFECTS) != set(Trigger):
        raise RuntimeError(f"triggers without transitions or effects: {missing}")
    return MappingProxyType(table)


def mermaid() -> str:
    """The machine as a Mermaid ``stateDiagram-v2``, drawn from the declaration.

    .. versionadded:: 0.1.0
    """
    lines = ["stateDiagram-v2"]
    initial = next(s for s in ConsentMachine.states if s.initial)
    lines.append(f"    [*] --> {ConsentState(initial.value).name}")
    for state in ConsentMachine.states:
        for transition in state.transitions:
            source = ConsentState(transition.source.value).name
            target = ConsentState(transition.target.value).name
            for event in transition.events:
                effect = EFFECTS[Trigger(str(event))]
                label = str(event) if effect is None else f"{event} / {effect.value}"
                lines.append(f"    {source} --> {target}: {label}")
    return "\n".join(lines) + "\n"
