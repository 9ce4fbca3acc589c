"""The consent machine's table, generated from its one declaration.

Do not edit: ``python docs/generate.py`` writes this file from
:class:`optin_core._declaration.ConsentMachine`, and a test fails while the
two disagree. It is plain data so that ``import optin_core`` does not import
python-statemachine (and asyncio with it).
"""

from __future__ import annotations

from typing import Final

from ._enums import ConsentState as S
from ._enums import Trigger as T

__all__ = ["TRANSITION_ROWS"]

#: ``(source, trigger, target)`` for every declared transition, in the
#: declaration's order.
TRANSITION_ROWS: Final[tuple[tuple[S, T, S], ...]] = (
    (S.NEW, T.REQUEST, S.PENDING),
    (S.NEW, T.DISCLOSE, S.DISCLOSED),
    (S.NEW, T.STOP, S.STOPPED),
    (S.NEW, T.REVOKE, S.STOPPED),
    (S.NEW, T.ATTEST, S.OPTED_IN),
    (S.NEW, T.HELP, S.NEW),
    (S.NEW, T.PAUSE, S.NEW),
    (S.NEW, T.SIGNUP, S.OPTED_IN),
    (S.NEW, T.EXPIRE, S.NEW),
    (S.NEW, T.DEAD_LETTER, S.NEW),
    (S.NEW, T.IMPORT_STOP, S.STOPPED),
    (S.NEW, T.IMPORT_OPT_IN, S.OPTED_IN),
    (S.PENDING, T.RESEND, S.PENDING),
    (S.PENDING, T.DISCLOSE, S.DISCLOSED),
    (S.PENDING, T.CONSENT, S.OPTED_IN),
    (S.PENDING, T.STOP, S.STOPPED),
    (S.PENDING, T.DECLINE, S.STOPPED),
    (S.PENDING, T.REVOKE, S.STOPPED),
    (S.PENDING, T.ATTEST, S.OPTED_IN),
    (S.PENDING, T.REMIND, S.PENDING),
    (S.PENDING, T.HELP, S.PENDING),
    (S.PENDING, T.PAUSE, S.PENDING),
    (S.PENDING, T.EXPIRE, S.PENDING),
    (S.PENDING, T.DEAD_LETTER, S.PENDING),
    (S.PENDING, T.IMPORT_STOP, S.STOPPED),
    (S.PENDING, T.IMPORT_OPT_IN, S.OPTED_IN),
    (S.OPTED_IN, T.STOP, S.STOPPED),
    (S.OPTED_IN, T.REVOKE, S.STOPPED),
    (S.OPTED_IN, T.ATTEST, S.OPTED_IN),
    (S.OPTED_IN, T.HELP, S.OPTED_IN),
    (S.OPTED_IN, T.TEXT, S.OPTED_IN),
    (S.OPTED_IN, T.PAUSE, S.OPTED_IN),
    (S.OPTED_IN, T.EXPIRE, S.OPTED_IN),
    (S.OPTED_IN, T.DEAD_LETTER, S.OPTED_IN),
    (S.OPTED_IN, T.IMPORT_STOP, S.STOPPED),
    (S.DISCLOSED, T.REQUEST, S.PENDING),
    (S.DISCLOSED, T.UPGRADE, S.OPTED_IN),
    (S.DISCLOSED, T.STOP, S.STOPPED),
    (S.DISCLOSED, T.REVOKE, S.STOPPED),
    (S.DISCLOSED, T.ATTEST, S.OPTED_IN),
    (S.DISCLOSED, T.HELP, S.DISCLOSED),
    (S.DISCLOSED, T.TEXT, S.DISCLOSED),
    (S.DISCLOSED, T.PAUSE, S.DISCLOSED),
    (S.DISCLOSED, T.EXPIRE, S.DISCLOSED),
    (S.DISCLOSED, T.DEAD_LETTER, S.DISCLOSED),
    (S.DISCLOSED, T.IMPORT_STOP, S.STOPPED),
    (S.DISCLOSED, T.IMPORT_OPT_IN, S.OPTED_IN),
    (S.STOPPED, T.RESTART, S.OPTED_IN),
    (S.STOPPED, T.REVOKE, S.STOPPED),
    (S.STOPPED, T.HELP, S.STOPPED),
    (S.STOPPED, T.PAUSE, S.STOPPED),
    (S.STOPPED, T.CANCEL, S.STOPPED),
    (S.STOPPED, T.EXPIRE, S.STOPPED),
    (S.STOPPED, T.DEAD_LETTER, S.STOPPED),
)
