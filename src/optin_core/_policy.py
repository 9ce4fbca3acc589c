"""Organisation policy: the knobs and hooks that make one org differ from another.

A :class:`Policy` is frozen and validated at construction; a bad setting raises
:class:`~optin_core.PolicyError` naming it. Hosts plug in their own rules by
subclassing and overriding the hooks (:meth:`Policy.allows_texting`,
:meth:`Policy.accepts_attestation`, :meth:`Policy.classify`,
:meth:`Policy.message`), whose defaults are the documented behaviour, as with
wsproto's ``Extension``.
"""

from __future__ import annotations

import enum
import os
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import time, timedelta
from types import MappingProxyType
from typing import Any

import attrs

from ._catalog import render_message
from ._enums import ConsentState, Intent, MessageKind
from ._errors import InvalidInput, PolicyError, UnknownLocale
from ._keywords import (
    KeywordCollision,
    KeywordIndex,
    build_keyword_index,
    lint_keywords,
    served_languages,
)
from ._levels import (
    DEFAULT_LEVELS,
    DISCLOSED,
    EXPRESS,
    INFORMATIONAL,
    MARKETING,
    NONE,
    WRITTEN,
    is_name,
)
from ._locale import available_locales, require_locale
from ._parser import OwnWords, own_words
from ._quiet import zone
from ._records import ParsedReply

__all__ = ["Mode", "Policy"]


class Mode(enum.Enum):
    """How an organisation gets permission to text.

    .. versionadded:: 0.1.0
    """

    __hash__ = object.__hash__

    #: The contact must answer the opt-in request with YES.
    ATTESTATION = "attestation"
    #: A disclaimer goes first; no answer is needed.
    DISCLAIMER = "disclaimer"


def _mode(value: object) -> Mode:
    try:
        return Mode(value)
    except ValueError:
        raise PolicyError(
            "mode", f"{value!r} is not one of {', '.join(m.value for m in Mode)}"
        ) from None


def _listed(words: object) -> tuple[str, ...] | None:
    """``words`` read once, as a tuple of non-empty strings; ``None`` when
    they are not (a one-shot iterator checked first would be left empty)."""
    if isinstance(words, str) or not isinstance(words, Iterable):
        return None
    listed = tuple(words)
    if not all(isinstance(w, str) and w.strip() for w in listed):
        return None
    return listed


def _freeze_keywords(
    value: Mapping[Any, Mapping[str, Any]] | None,
) -> Mapping[Intent, Mapping[str, tuple[str, ...]]]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise PolicyError("extra_keywords", "expected {Intent: {locale: [words]}}")
    frozen: dict[Intent, Mapping[str, tuple[str, ...]]] = {}
    for intent, per_locale in value.items():
        try:
            key = intent if isinstance(intent, Intent) else Intent(intent)
        except ValueError:
            raise PolicyError("extra_keywords", f"unknown intent {intent!r}") from None
        if key in (Intent.REACTION, Intent.UNRECOGNIZED):
            raise PolicyError("extra_keywords", f"{key.value} takes no keywords")
        if not isinstance(per_locale, Mapping):
            raise PolicyError(
                "extra_keywords", f"{key.value}: expected {{locale: [words]}}"
            )
        inner: dict[str, tuple[str, ...]] = {}
        for locale, words in per_locale.items():
            listed = _listed(words)
            if listed is None:
                raise PolicyError(
                    "extra_keywords",
                    f"{key.value}/{locale}: expected a list of non-empty words",
                )
            inner[str(locale)] = listed
        frozen[key] = MappingProxyType(inner)
    return MappingProxyType(frozen)


def _freeze_templates(
    value: Mapping[str, Mapping[Any, str]] | None,
) -> Mapping[str, Mapping[str, str]]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise PolicyError("templates", "expected {locale: {MessageKind: text}}")
    frozen: dict[str, Mapping[str, str]] = {}
    for locale, per_kind in value.items():
        if not isinstance(per_kind, Mapping):
            raise PolicyError("templates", f"{locale}: expected {{kind: text}}")
        inner: dict[str, str] = {}
        for kind, text in per_kind.items():
            try:
                name = kind.value if isinstance(kind, MessageKind) else kind
                MessageKind(name)
            except ValueError:
                raise PolicyError(
                    "templates", f"{locale}: unknown message kind {kind!r}"
                ) from None
            if name == MessageKind.TEXT.value:
                raise PolicyError("templates", "the agent's TEXT has no template")
            if not isinstance(text, str) or not text.strip():
                raise PolicyError("templates", f"{locale}/{name}: empty template")
            inner[name] = text
        frozen[str(locale)] = MappingProxyType(inner)
    return MappingProxyType(frozen)


def _quiet_hours(value: Any) -> tuple[time, time] | None:
    """``(start, end)`` as ``datetime.time`` or ``"HH:MM"``; start != end."""
    if value is None:
        return None
    try:
        start, end = value
    except (TypeError, ValueError):
        raise PolicyError(
            "quiet_hours", "expected (start, end), e.g. ('21:00', '08:00')"
        ) from None
    hours = []
    for name, given in (("start", start), ("end", end)):
        part = given
        if isinstance(given, str):
            try:
                part = time.fromisoformat(given)
            except ValueError:
                raise PolicyError(
                    "quiet_hours", f"{name} {given!r} is not a time like '21:00'"
                ) from None
        if not isinstance(part, time) or part.tzinfo is not None:
            raise PolicyError(
                "quiet_hours",
                f"{name} must be a wall-clock time without a zone, got {part!r}",
            )
        hours.append(part)
    if hours[0] == hours[1]:
        raise PolicyError(
            "quiet_hours",
            "start and end are the same time: an empty or a "
            "24-hour night; use None for no quiet hours",
        )
    return hours[0], hours[1]


def _languages(value: Iterable[str] | None) -> tuple[str, ...]:
    """The languages served, canonical and in pack order (None: all packs)."""
    try:
        return served_languages(value)
    except (UnknownLocale, TypeError) as e:
        raise PolicyError(
            "languages",
            f"{e}; the available languages are {', '.join(available_locales())}",
        ) from None


def _methods(value: Any) -> Mapping[str, str]:
    """``{method: level}``; a collection of names (the form of 0.2.0) gives
    each the ``express`` level."""
    if isinstance(value, str):
        raise PolicyError(
            "attestation_methods",
            "expected {method: level} or a collection of names, not one str",
        )
    if isinstance(value, Mapping):
        methods = dict(value)
    else:
        try:
            methods = dict.fromkeys(value, EXPRESS)
        except TypeError:
            raise PolicyError(
                "attestation_methods",
                "expected {method: level} or a collection of names",
            ) from None
    if not all(isinstance(m, str) and m.strip() for m in methods):
        raise PolicyError("attestation_methods", "names must be non-empty str")
    return MappingProxyType(methods)


def _levels(value: Any) -> tuple[str, ...]:
    """The ladder, lowest first: unique names, starting with ``none`` and
    holding ``disclosed`` and ``express`` in that order (the levels the
    rules give)."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise PolicyError("levels", "expected a sequence of level names, lowest first")
    ladder = tuple(value)
    for name in ladder:
        if not is_name(name):
            raise PolicyError(
                "levels",
                f"{name!r:.40} is not a level name (lowercase letters, digits, "
                "'_' and '-', starting with a letter)",
            )
    seen: set[str] = set()
    for name in ladder:
        if name in seen:
            raise PolicyError("levels", f"{name!r} appears twice in the ladder")
        seen.add(name)
    given = [n for n in ladder if n in (NONE, DISCLOSED, EXPRESS)]
    if not ladder or ladder[0] != NONE or given != [NONE, DISCLOSED, EXPRESS]:
        raise PolicyError(
            "levels",
            f"the ladder must start with {NONE!r} and hold {DISCLOSED!r} below "
            f"{EXPRESS!r} (the levels a stop, the disclaimer and a YES give), "
            f"got {list(ladder)!r}",
        )
    return ladder


def _categories(value: Any) -> Mapping[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise PolicyError("categories", "expected {category: minimum level}")
    for name in value:
        if not is_name(name):
            raise PolicyError(
                "categories",
                f"{name!r:.40} is not a category name (lowercase letters, "
                "digits, '_' and '-', starting with a letter)",
            )
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class Policy:
    """An organisation's consent rules. Defaults follow carrier practice.

    A bare ``Policy(org_name="Acme")`` uses attestation mode; allows 3 opt-in
    attempts, resent no sooner than 24 h apart; sends up to 3 reminders per
    attempt; confirms opt-ins, stops and restarts; answers HELP; lets START /
    UNSTOP restart a stopped contact, but not YES; treats a "No" to the
    request as a stop; and accepts no out-of-band attestation until the
    organisation names a method.

    ``provider_answers_keywords``: the SMS provider or carrier answers STOP,
    START and HELP itself (Twilio Advanced Opt-Out, short codes with carrier
    handling): they are still recorded, but no stop or restart confirmation
    and no HELP answer of ours is sent, so the contact never gets two.

    ``stop_confirmation_window`` (5 minutes by default; ``None``: no
    deadline): a stop confirmation not handed to the provider within it is
    logged as expired and never sent. The FCC presumes one confirmation text
    lawful within five minutes of the opt-out (47 CFR 64.1200(a)(12)); a
    late one only confuses.

    ``quiet_hours`` (off by default), e.g. ``("21:00", "08:00")``: the
    agent's own messages (texts, opt-in requests) wait for the end of the
    contact's night, in the contact's zone (the input's ``time_zone``, else
    ``time_zone``, the policy's default, UTC unless set): ``SendBlocked``
    with reason ``"quiet_hours"`` and ``next_allowed_at``. Answers to the
    contact (confirmations, HELP, reminders) are never held back.

    ``languages`` (every shipped pack by default): the languages whose
    consent and re-subscribe words count for any contact, whatever their
    locale ("Oui" from a contact with no locale opts in). Consent stays
    strict: the whole message must be the word. The contact's own locale
    chain always counts; ``languages=()`` accepts only it. A confirmation
    or HELP answer goes out in the language of the keyword used when the
    keyword belongs to one language (ARRET, AIDE, Oui), and that language
    becomes the contact's locale when none is known
    (:func:`~optin_core.keyword_language`). An unknown language is a
    :class:`~optin_core.PolicyError` listing the available ones.

    ``keyword_opt_in``: what a sign-up keyword (START, YES...) from a contact
    never texted before does: ``"off"`` (nothing: they never saw any
    wording), ``"double"`` (the opt-in request goes out, in the keyword's
    language; their YES to it opts them in) or ``"single"`` (they are opted
    in at once, with the confirmation). Either way the keyword is recorded
    as the evidence.

    ``log_key``, when set, keys the consent log's hash chain (HMAC-SHA-256):
    rewriting a contact's log then needs the key. Keep it outside the
    database that holds the logs, and pass the same key to
    :func:`~optin_core.verify`. It is never shown in the policy's ``repr``.

    Consent levels: ``levels`` is the ladder, lowest first (by default
    ``none < disclosed < express < written``; it starts with ``none`` and
    holds ``disclosed`` below ``express``, the levels the rules give).
    ``attestation_methods`` maps each accepted out-of-band method to the
    level it gives, ``{"email": "written", "app": "written",
    "phone_call": "express"}``, at least ``express``; a collection of names
    (the form of 0.2.0) gives each ``express``. ``categories`` maps each
    message category to the least level a text of it needs, merged over
    the defaults: ``informational`` needs ``express`` (``disclosed`` in
    disclaimer mode, so that texting after the disclaimer goes on as
    before) and ``marketing`` needs ``written`` (the ladder's top when it
    has no ``written``); :attr:`category_levels` holds the result. A level
    not on the ladder, a ladder with a name twice, a malformed category
    name: :class:`~optin_core.PolicyError`.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``log_key``, ``provider_answers_keywords``,
       ``stop_confirmation_window``, ``quiet_hours``, ``time_zone``,
       ``keyword_opt_in``.
    .. versionchanged:: 0.2.0 ``languages``.
    .. versionchanged:: 0.3.0 ``levels`` and ``categories``;
       ``attestation_methods`` maps each method to a level.
    """

    org_name: str
    program_name: str = ""
    mode: Mode = attrs.field(default=Mode.ATTESTATION, converter=_mode)
    default_locale: str = "en"
    languages: tuple[str, ...] = attrs.field(default=None, converter=_languages)
    allow_resend: bool = True
    max_attempts: int = 3
    resend_after: timedelta = timedelta(hours=24)
    max_reminders: int = 3
    confirm_opt_in: bool = True
    confirm_stop: bool = True
    confirm_restart: bool = True
    answer_help: bool = True
    allow_restart: bool = True
    yes_restarts: bool = False
    decline_stops: bool = True
    lenient_consent: bool = False
    provider_answers_keywords: bool = False
    stop_confirmation_window: timedelta | None = timedelta(minutes=5)
    quiet_hours: tuple[time, time] | None = attrs.field(
        default=None, converter=_quiet_hours
    )
    time_zone: str = "UTC"
    keyword_opt_in: str = "off"
    levels: tuple[str, ...] = attrs.field(default=DEFAULT_LEVELS, converter=_levels)
    attestation_methods: Mapping[str, str] = attrs.field(
        factory=dict, converter=_methods, hash=False
    )
    categories: Mapping[str, str] | None = attrs.field(
        default=None, converter=_categories, hash=False
    )
    max_greeting_length: int = 160
    max_request_length: int = 500
    max_text_length: int = 1600
    extra_keywords: Mapping[Intent, Mapping[str, tuple[str, ...]]] = attrs.field(
        factory=dict, converter=_freeze_keywords, eq=False, hash=False
    )
    templates: Mapping[str, Mapping[str, str]] = attrs.field(
        factory=dict, converter=_freeze_templates, eq=False, hash=False
    )
    loop_window: timedelta = timedelta(hours=1)
    loop_max_auto_replies: int = 5
    policy_id: str = "default"
    policy_version: str = "1"
    log_key: bytes | None = attrs.field(default=None, repr=False, eq=False, hash=False)
    keywords: KeywordIndex = attrs.field(init=False, eq=False, hash=False, repr=False)
    _rendered: Mapping[tuple[MessageKind, str | None], tuple[str, str]] = attrs.field(
        init=False, eq=False, hash=False, repr=False
    )
    #: Every automatic message this policy sends, in every locale, indexed
    #: for the parser: a reply quoting one at length is read without it
    #: (``parse_reply(..., ours=policy.own_words)``; ``decide`` does).
    own_words: OwnWords = attrs.field(init=False, eq=False, hash=False, repr=False)
    #: Every category this policy knows, with the least consent level a
    #: text of it needs: ``categories`` merged over the defaults.
    category_levels: Mapping[str, str] = attrs.field(
        init=False, eq=False, hash=False, repr=False
    )
    _ranks: Mapping[str, int] = attrs.field(
        init=False, eq=False, hash=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        self._validate()
        index = build_keyword_index(self.extra_keywords, languages=self.languages)
        object.__setattr__(self, "keywords", index)
        # Built once per policy. A subclass's ``message`` hook decides what
        # is sent, so its texts are the ones a contact can quote back.
        if type(self).message is Policy.message:
            texts = [(kind, text) for (kind, _), (text, _) in self._rendered.items()]
        else:
            texts = [(kind, self.message(kind, loc)[0]) for kind, loc in self._rendered]
        object.__setattr__(self, "own_words", own_words(texts))

    def _validate(self) -> None:
        for name in ("org_name", "policy_id", "policy_version"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise PolicyError(name, "must be a non-empty str")
        if not isinstance(self.program_name, str):
            raise PolicyError("program_name", "must be a str")
        for name in (
            "allow_resend",
            "confirm_opt_in",
            "confirm_stop",
            "confirm_restart",
            "answer_help",
            "allow_restart",
            "yes_restarts",
            "decline_stops",
            "lenient_consent",
            "provider_answers_keywords",
        ):
            if not isinstance(getattr(self, name), bool):
                raise PolicyError(name, "must be True or False")
        for name, low in (
            ("max_attempts", 1),
            ("max_reminders", 0),
            ("max_greeting_length", 0),
            ("max_request_length", 1),
            ("max_text_length", 1),
            ("loop_max_auto_replies", 1),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise PolicyError(name, f"must be an int >= {low}, got {value!r}")
        if self.log_key is not None and (
            not isinstance(self.log_key, bytes) or len(self.log_key) < 16
        ):
            raise PolicyError(
                "log_key",
                "must be None or a secret of at least 16 bytes (32 random bytes, "
                "e.g. secrets.token_bytes(32), kept outside the database)",
            )
        if self.keyword_opt_in not in ("off", "double", "single"):
            raise PolicyError(
                "keyword_opt_in",
                f"must be 'off', 'double' or 'single', got {self.keyword_opt_in!r}",
            )
        try:
            zone(self.time_zone)
        except ValueError as e:
            raise PolicyError("time_zone", str(e)) from None
        window = self.stop_confirmation_window
        if window is not None and (
            not isinstance(window, timedelta) or window <= timedelta(0)
        ):
            raise PolicyError(
                "stop_confirmation_window",
                f"must be None or a positive timedelta, got {window!r}",
            )
        for name in ("resend_after", "loop_window"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise PolicyError(name, f"must be a timedelta >= 0, got {value!r}")
        try:
            canonical = require_locale(self.default_locale)
        except (UnknownLocale, TypeError) as e:
            raise PolicyError("default_locale", str(e)) from None
        object.__setattr__(self, "default_locale", canonical)
        self._validate_levels()
        if not self.program_name:
            object.__setattr__(self, "program_name", self.org_name)
        for name in ("org_name", "program_name"):
            if any(
                unicodedata.category(ch) in ("Cc", "Cf") for ch in getattr(self, name)
            ):
                raise PolicyError(name, "must not contain control characters")
        for locale in self.templates:
            try:
                require_locale(locale)
            except UnknownLocale as e:
                raise PolicyError("templates", str(e)) from None
        # Render every message for every locale once: a broken override fails
        # here rather than when the first contact answers, and the hot path
        # looks its wording up instead of rendering it.
        rendered: dict[tuple[MessageKind, str | None], tuple[str, str]] = {}
        for kind in MessageKind:
            if kind is MessageKind.TEXT:
                continue
            for loc in (None, *available_locales()):
                rendered[kind, loc] = self._render(kind, loc)
        object.__setattr__(self, "_rendered", MappingProxyType(rendered))
        # A contact without a locale gets the default locale's request: a
        # limit below its wording would refuse every such request.
        wording, used = rendered[MessageKind.OPT_IN_REQUEST, None]
        if len(wording) > self.max_request_length:
            raise PolicyError(
                "max_request_length",
                f"is {self.max_request_length}, below the {len(wording)} "
                f"characters of the opt-in request's wording in {used}: raise "
                "it, or shorten the wording (templates)",
            )

    def _validate_levels(self) -> None:
        ranks = {name: rank for rank, name in enumerate(self.levels)}
        ladder = " < ".join(self.levels)
        for method, level in self.attestation_methods.items():
            # Not a str (a list, say): not a level either, and no TypeError.
            if not isinstance(level, str) or level not in ranks:
                raise PolicyError(
                    "attestation_methods",
                    f"{method!r} gives {level!r:.40}, which is not a level of "
                    f"the ladder ({ladder})",
                )
            if ranks[level] < ranks[EXPRESS]:
                raise PolicyError(
                    "attestation_methods",
                    f"{method!r} gives {level!r}, but an accepted attestation is "
                    f"consent: its level is {EXPRESS!r} or higher",
                )
        defaults = {
            INFORMATIONAL: DISCLOSED if self.mode is Mode.DISCLAIMER else EXPRESS,
            MARKETING: WRITTEN if WRITTEN in ranks else self.levels[-1],
        }
        merged = {**defaults, **(self.categories or {})}
        for category, level in merged.items():
            if not isinstance(level, str) or level not in ranks:
                raise PolicyError(
                    "categories",
                    f"{category!r} needs {level!r:.40}, which is not a level of "
                    f"the ladder ({ladder})",
                )
        object.__setattr__(self, "category_levels", MappingProxyType(merged))
        object.__setattr__(self, "_ranks", MappingProxyType(ranks))

    @classmethod
    def from_toml(
        cls,
        source: str | os.PathLike[str],
        *,
        table: str | None = None,
        **overrides: Any,
    ) -> Policy:
        """A policy read from a TOML file (a path), or from TOML text.

        The file's keys are the settings' names (see the settings reference
        in the docs); ``table`` reads them from a dotted sub-table instead
        (``"tool.optin_core"``), and ``overrides`` win over the file.
        Durations are strings such as ``"24h"``, ``"30m"``, ``"1h30m"`` or
        integers of seconds; ``"none"`` stands for ``None``; ``quiet_hours``
        is ``["21:00", "08:00"]``. ``log_key`` is never read from a file:
        pass it as an override.

        A ``str`` holding a line break or an ``=`` is TOML text, any other
        ``str`` or an ``os.PathLike`` a path. Raises
        :class:`~optin_core.PolicyError` naming the key for an unknown key,
        a value of the wrong type (with the type expected) or an invalid
        setting; ``tomllib.TOMLDecodeError`` for text that is not TOML;
        ``OSError`` for a file that cannot be read.

        .. versionadded:: 0.2.0
        """
        from ._toml import policy_settings  # noqa: PLC0415 (on use: tomllib)

        return cls(**policy_settings(cls, source, table=table, overrides=overrides))

    # -- hooks: override in a subclass to plug in an organisation's rules --

    def allows_texting(self, state: ConsentState) -> bool:
        """Whether the agent may text in its own words in ``state``.

        Opted-in contacts always; disclosed ones only in disclaimer mode, so
        that switching to attestation blocks them until they answer YES.
        """
        return state is ConsentState.OPTED_IN or (
            state is ConsentState.DISCLOSED and self.mode is Mode.DISCLAIMER
        )

    def discloses_first(self, state: ConsentState) -> bool:
        """Whether a text to a contact in ``state`` goes out after the
        disclaimer: in disclaimer mode, to a contact not yet disclosed
        (``NEW``, or ``PENDING`` from an earlier attestation policy). With
        :meth:`allows_texting`, the whole rule of who may be texted.

        .. versionadded:: 0.3.0
        """
        return self.mode is Mode.DISCLAIMER and (
            state is ConsentState.NEW or state is ConsentState.PENDING
        )

    def accepts_attestation(self, method: str) -> bool:
        """Whether consent gathered by ``method`` (e-mail, app...) counts."""
        return method in self.attestation_methods

    def attestation_level(self, method: str) -> str:
        """The consent level an accepted attestation by ``method`` gives:
        ``attestation_methods``' level for it, ``express`` for a method a
        subclass accepts without mapping it. A level of the ladder, at least
        ``express``.

        .. versionadded:: 0.3.0
        """
        return self.attestation_methods.get(method, EXPRESS)

    def category_level(self, category: str) -> str:
        """The least consent level a text of ``category`` needs.

        Raises :class:`~optin_core.InvalidInput` for a category the policy
        does not name (:attr:`category_levels`).

        .. versionadded:: 0.3.0
        """
        found = self.category_levels.get(category)
        if found is None:
            known = ", ".join(sorted(self.category_levels))
            raise InvalidInput(
                f"unknown message category {category!r:.60}; this policy knows "
                f"{known} (add it to Policy.categories)"
            )
        return found

    def level_rank(self, level: str) -> int:
        """``level``'s position on the ladder (``none`` is 0). A level not
        on it (a head written under another ladder) ranks as ``express``:
        only an opted-in contact can have one.

        .. versionadded:: 0.3.0
        """
        ranks = self._ranks
        found = ranks.get(level)
        return ranks[EXPRESS] if found is None else found

    def reaches(self, level: str, required: str) -> bool:
        """Whether a contact at ``level`` may get a text needing ``required``.

        .. versionadded:: 0.3.0
        """
        return self.level_rank(level) >= self.level_rank(required)

    def methods_reaching(self, level: str) -> tuple[str, ...]:
        """The accepted attestation methods that give ``level`` or more,
        sorted: what raises a contact to it.

        .. versionadded:: 0.3.0
        """
        return tuple(
            sorted(
                method
                for method, given in self.attestation_methods.items()
                if self.reaches(given, level)
            )
        )

    def classify(self, reply: ParsedReply) -> ParsedReply:
        """Last word on a parsed reply; return it unchanged by default.

        Override to reclassify (say, read a form's reference number as
        consent). A STOP should never be turned into anything else.
        """
        return reply

    def message(self, kind: MessageKind, locale: str | None) -> tuple[str, str]:
        """The text of an automatic message and the locale it is in.

        Defaults to the policy's template overrides, then the catalogs.
        """
        found = self._rendered.get((kind, locale))
        return self._render(kind, locale) if found is None else found

    def _render(self, kind: MessageKind, locale: str | None) -> tuple[str, str]:
        return render_message(
            kind,
            locale,
            default_locale=self.default_locale,
            org_name=self.org_name,
            program_name=self.program_name,
            overrides=self.templates,
        )

    def lint(self) -> tuple[KeywordCollision, ...]:
        """Keywords that land in two intents, so a collision is a decision.

        With ``yes_restarts`` the consent words also restart a stopped
        contact (Twilio's reading of YES); that is reported too. Consent
        words of every language in ``languages`` count for every contact, so
        a word that means consent in one of them and stop, help or decline
        in another is reported (with both packs in ``locales``).
        """
        found = list(lint_keywords(self.keywords))
        if self.yes_restarts:
            found.append(
                KeywordCollision(
                    keyword="yes",
                    locale="*",
                    intents=(Intent.CONSENT, Intent.START),
                )
            )
        return tuple(found)
