# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The qrexec policy (R4.1+ format): grammar, validation and evaluation.

One grammar for the whole project: modules, the rehearsal dom0 and tests all
parse, render, validate and evaluate policy through this module.  No Ansible
imports.

Text
    :func:`parse` turns a file's text into items (:class:`Rule`,
    :class:`Comment`, :class:`Blank`, :class:`Include`, :class:`IncludeDir`,
    :class:`IncludeService`, :class:`Compat40`); :func:`render` gives the
    canonical text back (single spaces, parameters in a fixed order, comments
    kept).  ``fmt="service"`` reads the old three-column format of files named
    by ``!include-service`` (``$`` for ``@``, commas as separators).
    Validation is as strict as ``qubes-policy-lint``; every error is a
    :class:`PolicyError` naming file, line and field.

Data
    :func:`rule_from_dict` and :meth:`Rule.as_dict` convert between rules and
    plain dicts (the form playbooks use); :func:`validate_name` checks a name
    for the policy admin API.

Evaluation
    :class:`Policy` holds a whole policy directory (files by relative path),
    resolves includes, validates everything and answers
    :meth:`Policy.evaluate` with a :class:`Decision`, following qrexec: files
    in C-locale order, first matching rule wins, no match is a denial.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from collections.abc import Iterable, Mapping

DOM0_UUID = "00000000-0000-0000-0000-000000000000"
POLICY_DIR = "/etc/qubes/policy.d"
"""Where real dom0 keeps the policy; include paths may name it absolutely."""
POLICY_SUFFIX = ".policy"
INCLUDE_DIR = "include"

ACTIONS = ("allow", "deny", "ask")
PARAM_ORDER = ("target", "default_target", "user", "notify", "autostart")
"""Parameters in the order :func:`render` writes them."""
ACTION_PARAMS = {
    "allow": ("target", "user", "notify", "autostart"),
    "ask": ("target", "default_target", "user", "notify", "autostart"),
    "deny": ("notify",),
}
BOOLEAN_PARAMS = ("notify", "autostart")
VM_CLASSES = ("AdminVM", "AppVM", "DispVM", "RemoteVM", "StandaloneVM", "TemplateVM")

_SERVICE = re.compile(r"\A[A-Za-z0-9._-]+\Z")
_ARGUMENT = re.compile(r"\A\+[A-Za-z0-9+._-]*\Z")
_QUBE = re.compile(r"\A[A-Za-z][A-Za-z0-9_.-]{0,30}\Z")
_TAG = re.compile(r"\A[A-Za-z0-9_-]+\Z")
_UUID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_USER = re.compile(r"\A[A-Za-z0-9_.-]+\Z")
_TOP_FILE = re.compile(r"\A[0-9a-z_.-]+\Z")
_API_NAME = re.compile(r"\A[0-9a-z_-]+\Z")


class PolicyError(ValueError):
    """A policy that qrexec would refuse.

    ``file`` and ``line`` (1-based, None when the error is about a whole
    file or a rule given as data) locate it; ``field`` names the column or
    parameter (``source``, ``action``, ``target=``...).  ``str()`` gives
    ``"<file>:<line>: <field>: <message>"``.
    """

    def __init__(self, file: str, line: int | None, field: str, message: str):
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {field}: {message}")


# --------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------

TOKEN_FORMS = {
    "name": "a qube name",
    "uuid": "uuid:UUID",
    "wildcard": "*",
    "anyvm": "@anyvm",
    "adminvm": "@adminvm",
    "default": "@default",
    "dispvm": "@dispvm",
    "dispvm-template": "@dispvm:NAME",
    "dispvm-tag": "@dispvm:@tag:TAG",
    "tag": "@tag:TAG",
    "type": "@type:CLASS",
}
SOURCE_KINDS = ("name", "uuid", "wildcard", "anyvm", "adminvm", "dispvm-template", "dispvm-tag", "tag", "type")
TARGET_KINDS = ("name", "uuid", "wildcard", "anyvm", "adminvm", "default", "dispvm", "dispvm-template",
                "dispvm-tag", "tag", "type")
REDIRECT_KINDS = ("name", "uuid", "adminvm", "dispvm", "dispvm-template")
"""What ``target=`` and ``default_target=`` accept."""


def token_kind(token: str) -> str | None:
    """The kind of a qube token (a key of :data:`TOKEN_FORMS`), or None if it is not one."""
    simple = {"*": "wildcard", "@anyvm": "anyvm", "@adminvm": "adminvm", "@default": "default",
              "@dispvm": "dispvm"}
    if token in simple:
        return simple[token]
    prefixed = (("@dispvm:@tag:", "dispvm-tag", _TAG), ("@dispvm:uuid:", "dispvm-template", _UUID),
                ("@dispvm:", "dispvm-template", _QUBE),
                ("@tag:", "tag", _TAG), ("uuid:", "uuid", _UUID))
    for prefix, kind, pattern in prefixed:
        if token.startswith(prefix):
            return kind if pattern.match(token[len(prefix):]) else None
    if token.startswith("@type:"):
        return "type" if token[len("@type:"):] in VM_CLASSES else None
    if _QUBE.match(token):
        return "name"
    return None


def _forms(kinds: Iterable[str]) -> str:
    names = [TOKEN_FORMS[k] for k in kinds]
    return ", ".join(names[:-1]) + " or " + names[-1]


def check_token(token: str, kinds: tuple[str, ...], column: str) -> str | None:
    """Why ``token`` cannot stand in ``column`` (whose legal kinds are ``kinds``), or None."""
    if token.startswith("@uuid:"):
        return f"invalid token {token!r}: a qube by UUID is written uuid:UUID, without '@'"
    if token.startswith("@type:") and token_kind(token) is None:
        return f"invalid token {token!r}: the class must be one of {', '.join(VM_CLASSES)}"
    kind = token_kind(token)
    if kind is None:
        return f"invalid token {token!r}: expected {_forms(kinds)}"
    if kind not in kinds:
        return f"{token!r} is not allowed as {column}: expected {_forms(kinds)}"
    return None


def _check_service(service: str) -> str | None:
    if service == "*" or _SERVICE.match(service):
        return None
    return f"invalid service {service!r}: expected * or a name of letters, digits, '.', '_' and '-' (no '+')"


def _check_argument(argument: str, service: str) -> str | None:
    if argument == "*":
        return None
    if service == "*":
        return f"argument {argument!r} with service *: a * service needs the * argument"
    if _ARGUMENT.match(argument):
        return None
    return (f"invalid argument {argument!r}: expected * (any), + (no argument) or +ARG with ARG of letters, "
            "digits, '+', '.', '_' and '-'")


# --------------------------------------------------------------------------
# Items of a policy file
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rule:
    """One policy rule.

    ``params`` holds ``(key, value)`` pairs in :data:`PARAM_ORDER`.  Rules of
    an old-format file (``fmt="service"``) have ``service`` and ``argument``
    None until an ``!include-service`` supplies them.  ``file`` and ``line``
    say where the rule was read (not part of equality).
    """

    service: str | None
    argument: str | None
    source: str
    target: str
    action: str
    params: tuple = ()
    file: str | None = dataclasses.field(default=None, compare=False)
    line: int | None = dataclasses.field(default=None, compare=False)

    def param(self, key: str) -> str | None:
        """The value of a parameter (None if not given)."""
        return dict(self.params).get(key)

    @property
    def redirect(self) -> str | None:
        """``target=``: where the call goes instead of the requested target."""
        return self.param("target")

    def render(self, fmt: str = "new") -> str:
        """The rule as one line of a policy file (``fmt="service"``: the old format)."""
        params = [f"{key}={value}" for key, value in self.params]
        if fmt == "service":
            return " ".join((self.source, self.target, ",".join([self.action] + params)))
        return " ".join([self.service, self.argument, self.source, self.target, self.action] + params)

    def as_dict(self) -> dict:
        """The rule as data, the inverse of :func:`rule_from_dict`."""
        item = {"service": self.service, "argument": self.argument, "source": self.source,
                "target": self.target, "action": self.action}
        for key, value in self.params:
            item[DICT_KEYS_BY_PARAM[key]] = (value == "yes") if key in BOOLEAN_PARAMS else value
        return item


@dataclasses.dataclass(frozen=True)
class Comment:
    """A comment line, kept as written (without surrounding blanks)."""

    text: str

    def render(self, fmt: str = "new") -> str:  # pylint: disable=unused-argument
        """The line."""
        return self.text


@dataclasses.dataclass(frozen=True)
class Blank:
    """An empty line."""

    def render(self, fmt: str = "new") -> str:  # pylint: disable=unused-argument
        """The line."""
        return ""


@dataclasses.dataclass(frozen=True)
class Include:
    """``!include PATH``: a file in the same format, read in place."""

    path: str
    line: int | None = dataclasses.field(default=None, compare=False)

    def render(self, fmt: str = "new") -> str:  # pylint: disable=unused-argument
        """The line."""
        return f"!include {self.path}"


@dataclasses.dataclass(frozen=True)
class IncludeDir:
    """``!include-dir DIR``: every ``*.policy`` file of DIR, in order."""

    path: str
    line: int | None = dataclasses.field(default=None, compare=False)

    def render(self, fmt: str = "new") -> str:  # pylint: disable=unused-argument
        """The line."""
        return f"!include-dir {self.path}"


@dataclasses.dataclass(frozen=True)
class IncludeService:
    """``!include-service SERVICE ARGUMENT PATH``: an old-format file for one service."""

    service: str
    argument: str
    path: str
    line: int | None = dataclasses.field(default=None, compare=False)

    def render(self, fmt: str = "new") -> str:  # pylint: disable=unused-argument
        """The line."""
        return f"!include-service {self.service} {self.argument} {self.path}"


@dataclasses.dataclass(frozen=True)
class Compat40:
    """``!compat-4.0``: read the R4.0 per-service files (none exist in the rehearsal)."""

    line: int | None = dataclasses.field(default=None, compare=False)

    def render(self, fmt: str = "new") -> str:  # pylint: disable=unused-argument
        """The line."""
        return "!compat-4.0"


# --------------------------------------------------------------------------
# Parsing and rendering
# --------------------------------------------------------------------------


def _check_params(words: list[str], action: str, target: str, file: str, line: int | None) -> tuple:
    """Validate ``key=value`` words for ``action``; the pairs in canonical order."""
    allowed = ACTION_PARAMS[action]
    given: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        field = f"{key}="
        if not sep or not key:
            raise PolicyError(file, line, "params", f"{word!r} is not a PARAM=VALUE pair")
        if key not in PARAM_ORDER:
            raise PolicyError(file, line, field, f"unknown option {key!r}: {action} takes "
                              + ", ".join(f"{k}=" for k in allowed))
        if key not in allowed:
            raise PolicyError(file, line, field, f"{action} does not take {key}=: it takes "
                              + ", ".join(f"{k}=" for k in allowed))
        if key in given:
            raise PolicyError(file, line, field, f"{key}= given more than once")
        given[key] = value
        problem = _check_param_value(key, value)
        if problem:
            raise PolicyError(file, line, field, problem)
    if action == "allow" and target == "@default" and "target" not in given:
        raise PolicyError(file, line, "target=", "allow with target @default needs target=QUBE (the caller gave none)")
    return tuple((key, given[key]) for key in PARAM_ORDER if key in given)


def _check_param_value(key: str, value: str) -> str | None:
    if key in BOOLEAN_PARAMS:
        return None if value in ("yes", "no") else f"{key}={value!r}: expected yes or no"
    if key == "user":
        return None if _USER.match(value) else f"invalid user {value!r}"
    return check_token(value, REDIRECT_KINDS, f"{key}=")


def make_rule(service: str | None, argument: str | None, source: str, target: str, action: str,
              params: Iterable[str] = (), file: str = "<policy>", line: int | None = None) -> Rule:
    """A validated rule from its fields (``params`` as ``key=value`` words); PolicyError if invalid."""
    if service is not None:
        for field, problem in (("service", _check_service(service)),
                               ("argument", _check_argument(argument, service))):
            if problem:
                raise PolicyError(file, line, field, problem)
    for field, value, kinds in (("source", source, SOURCE_KINDS), ("target", target, TARGET_KINDS)):
        problem = check_token(value, kinds, field)
        if problem:
            raise PolicyError(file, line, field, problem)
    if action not in ACTIONS:
        raise PolicyError(file, line, "action", f"invalid action {action!r}: expected allow, deny or ask")
    checked = _check_params(list(params), action, target, file, line)
    return Rule(service, argument, source, target, action, checked, file=file, line=line)


_INCLUDE_NAME = re.compile(r"\A[A-Za-z0-9_.-]+\Z")


def _check_include_path(path: str, directory: bool) -> str | None:
    """Why qrexec would not consider an include path (None if it would).

    A file is one directly in the policy directory or in its ``include``
    subdirectory (relative, or under /etc/qubes/policy.d); a directory for
    ``!include-dir`` is one directly in the policy directory.
    """
    relative = path[len(POLICY_DIR) + 1:] if path.startswith(POLICY_DIR + "/") else path
    parts = relative.split("/")
    if directory:
        valid = len(parts) == 1 and bool(_INCLUDE_NAME.match(parts[0])) and parts[0] not in (".", "..")
        what = f"invalid directory {path}: only a directory directly in {POLICY_DIR} is considered"
    else:
        valid = (len(parts) == 1 or (len(parts) == 2 and parts[0] == INCLUDE_DIR)) and bool(
            _INCLUDE_NAME.match(parts[-1])) and parts[-1] not in (".", "..")
        what = (f"invalid path {path}: only files directly in {POLICY_DIR} or {POLICY_DIR}/{INCLUDE_DIR} are "
                f"considered (write NAME or {INCLUDE_DIR}/NAME)")
    return None if valid else what


def _parse_directive(words: list[str], fmt: str, file: str, line: int):
    """A ``!``-line of either format."""
    name, args = words[0], words[1:]
    expected = {"!include": 1}
    if fmt == "new":
        expected.update({"!include-dir": 1, "!include-service": 3, "!compat-4.0": 0})
    if name not in expected:
        raise PolicyError(file, line, "directive", f"unknown directive {name!r}: expected "
                          + ", ".join(sorted(expected)))
    if len(args) != expected[name]:
        usage = {"!include": "!include PATH", "!include-dir": "!include-dir DIR",
                 "!include-service": "!include-service SERVICE ARGUMENT PATH", "!compat-4.0": "!compat-4.0"}
        raise PolicyError(file, line, "directive", f"wrong number of arguments: expected {usage[name]}")
    if name in ("!include", "!include-dir", "!include-service"):
        problem = _check_include_path(args[-1], directory=name == "!include-dir")
        if problem:
            raise PolicyError(file, line, name, problem)
    if name == "!include":
        return Include(args[0], line=line)
    if name == "!include-dir":
        return IncludeDir(args[0], line=line)
    if name == "!compat-4.0":
        return Compat40(line=line)
    service, argument, path = args
    for field, problem in (("service", _check_service(service)), ("argument", _check_argument(argument, service))):
        if problem:
            raise PolicyError(file, line, field, problem)
    return IncludeService(service, argument, path, line=line)


def parse_line(text: str, file: str = "<policy>", line: int = 1, fmt: str = "new"):
    """One line of a policy file as an item; PolicyError if qrexec would refuse it."""
    stripped = text.strip()
    if not stripped:
        return Blank()
    if stripped.startswith("#"):
        return Comment(stripped)
    if "#" in stripped:
        raise PolicyError(file, line, "comment", "inline comments are not allowed: put the comment on a line of its own")
    if fmt == "service" and stripped.startswith("$include:"):
        return Include(stripped[len("$include:"):], line=line)
    words = stripped.split()
    if words[0].startswith("!"):
        return _parse_directive(words, fmt, file, line)
    if fmt == "service":
        words = stripped.replace("$", "@").replace(",", " ").split()
        if len(words) < 3:
            raise PolicyError(file, line, "line", "expected SOURCE TARGET ACTION[,PARAM=VALUE...]")
        return make_rule(None, None, words[0], words[1], words[2], words[3:], file, line)
    if len(words) < 5:
        raise PolicyError(file, line, "line", "expected SERVICE ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE ...]")
    if "," in words[4]:
        raise PolicyError(file, line, "action", "comma-separated parameters belong to the old format: "
                          "separate them with spaces")
    return make_rule(words[0], words[1], words[2], words[3], words[4], words[5:], file, line)


def parse(text: str, file: str = "<policy>", fmt: str = "new") -> list:
    """Every line of a policy file as an item.

    ``fmt`` is ``"new"`` (the R4.1+ format) or ``"service"`` (the old format
    of ``!include-service`` files).  The first invalid line raises PolicyError.
    """
    if fmt not in ("new", "service"):
        raise ValueError(f"unknown policy format {fmt!r}")
    return [parse_line(text_line, file, number, fmt) for number, text_line in enumerate(text.splitlines(), 1)]


def render(items: Iterable, fmt: str = "new") -> str:
    """The canonical text of items (one line each, newline-terminated)."""
    return "".join(item.render(fmt) + "\n" for item in items)


def validate(text: str, file: str = "<policy>", fmt: str = "new") -> None:
    """Check one file's syntax (what ``qubes-policy-lint`` checks); PolicyError if invalid."""
    parse(text, file, fmt)


# --------------------------------------------------------------------------
# Rules as data
# --------------------------------------------------------------------------

DICT_KEYS = {
    "service": None, "argument": None, "source": None, "target": None, "action": None,
    "redirect": "target", "default_target": "default_target", "user": "user",
    "notify": "notify", "autostart": "autostart",
}
"""Keys of a rule dict; the value is the policy parameter a key stands for."""
DICT_KEYS_BY_PARAM = {param: key for key, param in DICT_KEYS.items() if param}


def _dict_value(value, key: str, where: str) -> str:
    if key in BOOLEAN_PARAMS:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if value in ("yes", "no"):
            return value
        raise PolicyError(where, None, key, f"{value!r}: expected true/false (or yes/no)")
    if not isinstance(value, str) or not value:
        raise PolicyError(where, None, key, f"{value!r}: expected a non-empty string")
    return value


def rule_from_dict(item: Mapping, index: int) -> Rule:
    """A rule from data, as a playbook gives it.

    Keys: ``service``, ``argument`` (default ``*``), ``source``, ``target``,
    ``action`` (allow, deny or ask), and the action's parameters:
    ``redirect`` (the ``target=`` parameter: where the call goes instead),
    ``default_target`` (ask only), ``user``, ``notify`` and ``autostart``
    (booleans, written yes/no).  Unknown keys are refused.  Errors name the
    rule as ``rules[<index>]`` and the offending key.
    """
    where = f"rules[{index}]"
    if not isinstance(item, Mapping):
        raise PolicyError(where, None, "rule", f"expected a mapping, got {type(item).__name__}")
    unknown = sorted(set(item) - set(DICT_KEYS))
    if unknown:
        raise PolicyError(where, None, str(unknown[0]), "unknown key: expected " + ", ".join(DICT_KEYS))
    for key in ("service", "source", "target", "action"):
        if key not in item:
            raise PolicyError(where, None, key, "missing")
    fields = {key: _dict_value(item[key], key, where) for key in ("service", "source", "target", "action")}
    fields["argument"] = _dict_value(item.get("argument", "*"), "argument", where)
    words = [f"{param}={_dict_value(item[key], key, where)}"
             for key, param in DICT_KEYS.items() if param and item.get(key) is not None]
    try:
        return make_rule(fields["service"], fields["argument"], fields["source"], fields["target"],
                         fields["action"], words, where)
    except PolicyError as exc:
        field = exc.field.rstrip("=")
        key = "redirect" if field == "target" and exc.field.endswith("=") else field
        raise PolicyError(where, None, key, exc.message) from None


# --------------------------------------------------------------------------
# Names for the policy admin API
# --------------------------------------------------------------------------


def validate_name(name: str) -> str:
    """Check a policy API name (``NAME`` or ``include/NAME``); return it, or raise PolicyError.

    NAME has no ``.policy`` suffix and only lowercase letters, digits, ``_``
    and ``-``: what both the API (``^[\\w-]+$``) and the policy loader
    (``[0-9a-z_.-]``) accept.
    """
    base = name[len(INCLUDE_DIR) + 1:] if isinstance(name, str) and name.startswith(INCLUDE_DIR + "/") else name
    if not isinstance(base, str) or not _API_NAME.match(base):
        raise PolicyError(str(name), None, "name", "invalid policy file name: use lowercase letters, digits, "
                          "'_' and '-' only, without the .policy suffix (include files as include/NAME)")
    return name


def file_path(name: str) -> str:
    """The path, relative to the policy directory, of an API name (``30-user`` -> ``30-user.policy``)."""
    validate_name(name)
    return name if name.startswith(INCLUDE_DIR + "/") else name + POLICY_SUFFIX


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class QubeInfo:
    """What evaluation needs to know about one qube.

    ``template`` is a DispVM's disposable template (for ``@dispvm:NAME`` as
    source).
    """

    name: str
    klass: str
    tags: frozenset = frozenset()
    default_dispvm: str | None = None
    template_for_dispvms: bool = False
    uuid: str | None = None
    template: str | None = None

    @classmethod
    def from_value(cls, name: str, value) -> QubeInfo:
        """From a QubeInfo or a dict with keys class, tags, default_dispvm, template_for_dispvms, uuid, template."""
        if isinstance(value, QubeInfo):
            return value
        return cls(name=name, klass=value.get("class", "AppVM"), tags=frozenset(value.get("tags", ())),
                   default_dispvm=value.get("default_dispvm") or None,
                   template_for_dispvms=bool(value.get("template_for_dispvms")),
                   uuid=value.get("uuid"), template=value.get("template") or None)


@dataclasses.dataclass(frozen=True)
class Decision:
    """The answer of :meth:`Policy.evaluate`.

    ``action`` is allow, deny or ask (never ask with ``assume_yes_for_ask``);
    ``target`` the qube the call goes to (``dom0`` for the admin qube,
    ``@dispvm:NAME`` for a new disposable; None when denied or not yet
    chosen); ``params`` the matching rule's parameters; ``file`` / ``line``
    / ``rule`` where the decision came from (None when no rule matched);
    ``reason`` a sentence for logs.
    """

    action: str
    target: str | None = None
    params: dict = dataclasses.field(default_factory=dict)
    file: str | None = None
    line: int | None = None
    rule: Rule | None = None
    reason: str = ""

    @property
    def allowed(self) -> bool:
        """The call may go ahead."""
        return self.action == "allow"


class _Qubes(Mapping):
    """The qubes of a request as :class:`QubeInfo`, each made when first asked for (a system may read a qube's
    details only then)."""

    def __init__(self, system: Mapping):
        self._system = system
        self._made: dict[str, QubeInfo] = {}

    def __getitem__(self, name: str) -> QubeInfo:
        if name not in self._made:
            self._made[name] = QubeInfo.from_value(name, self._system[name])
        return self._made[name]

    def __contains__(self, name) -> bool:
        return name in self._system

    def __iter__(self):
        return iter(self._system)

    def __len__(self) -> int:
        return len(self._system)


class _Request:
    """A call being evaluated: normalised source and target, and the qubes."""

    def __init__(self, system: Mapping, source: str, target: str):
        self.qubes = _Qubes(system)
        self.source = self.normalise(source)
        self.target = self.normalise(target or "@default")

    def normalise(self, value: str) -> str:
        """dom0's aliases become ``dom0``; ``uuid:`` becomes the qube's name."""
        if value in ("dom0", "@adminvm", "uuid:" + DOM0_UUID):
            return "dom0"
        if value.startswith("uuid:"):
            for info in self.qubes.values():
                if info.uuid == value[len("uuid:"):]:
                    return info.name
        return value

    def dispvm_template(self, value: str) -> str | None:
        """The disposable template a target means (``@dispvm``: the source's default_dispvm)."""
        if value == "@dispvm":
            info = self.qubes.get(self.source)
            return info.default_dispvm if info else None
        if value.startswith("@dispvm:") and not value.startswith("@dispvm:@"):
            return self.normalise(value[len("@dispvm:"):])
        return None

    def matches(self, token: str, value: str, as_source: bool) -> bool:
        """Does a policy token match a (normalised) request value?"""
        kind = token_kind(token)
        info = self.qubes.get(value)
        if kind == "wildcard":
            return True
        if kind == "anyvm":
            return value != "dom0"
        if kind in ("adminvm", "name", "uuid"):
            return value == self.normalise(token)
        if kind in ("default", "dispvm"):
            return value == token
        if kind == "dispvm-template":
            if as_source:
                return info is not None and info.klass == "DispVM" and info.template == token[len("@dispvm:"):]
            return self.dispvm_template(value) == token[len("@dispvm:"):]
        if kind == "dispvm-tag":
            if as_source:
                base = info.template if info is not None and info.klass == "DispVM" else None
            else:
                base = self.dispvm_template(value)
            base_info = self.qubes.get(base) if base else None
            return (base_info is not None and base_info.template_for_dispvms
                    and token[len("@dispvm:@tag:"):] in base_info.tags)
        if kind == "tag":
            return info is not None and token[len("@tag:"):] in info.tags
        if kind == "type":
            return info is not None and info.klass == token[len("@type:"):]
        return False

    def concrete(self, token: str) -> tuple[str | None, str]:
        """Where a call to ``token`` goes: (target, "") or (None, why it cannot go there)."""
        value = self.normalise(token)
        if value == "@default":
            return None, "no target: the caller gave none and the rule has no target="
        if value == "@dispvm" or value.startswith("@dispvm:"):
            base = self.dispvm_template(value)
            if not base:
                return None, f"{self.source} has no default_dispvm for @dispvm"
            base_info = self.qubes.get(base)
            if base_info is None or not base_info.template_for_dispvms:
                return None, f"{base} is not a disposable template"
            return f"@dispvm:{base}", ""
        if value not in self.qubes:
            return None, f"no such qube: {value}"
        return value, ""


def _argument_matches(pattern: str, argument: str) -> bool:
    return pattern == "*" or pattern == "+" + argument


class Policy:
    """A whole policy: the files of a policy directory, includes resolved and validated.

    ``sources`` maps paths relative to the policy directory to file text:
    top-level files (``90-default.policy``) and included ones
    (``include/admin-local-ro``).  ``directories`` names subdirectories that
    exist even if empty (for ``!include-dir``).  Construction raises
    :class:`PolicyError` for anything that would make qrexec deny every call:
    a syntax error, a top-level ``*.policy`` file with a bad name, a missing
    include, an include loop or an include outside the policy directory.
    """

    def __init__(self, sources: Mapping[str, str], directories: Iterable[str] = ()):
        self.sources = dict(sources)
        self.directories = set(directories) | {posixpath.dirname(p) for p in self.sources if "/" in p}
        self.rules: list[Rule] = []
        self.included: dict[str, list[str]] = {}
        """Included path -> the files that include it."""
        self.contributions: dict[str, list[Rule]] = {}
        """Top-level file -> the rules it brings in (includes resolved)."""
        self.services: dict[str, set] = {}
        """Top-level file -> the services its rules and ``!include-service`` lines name."""
        for path in self.top_files():
            self._named: set = set()
            rules = self._load(path, "new", (), None)
            self.contributions[path] = rules
            self.services[path] = self._named | {rule.service for rule in rules}
            self.rules.extend(rules)

    @classmethod
    def from_directory(cls, directory: str) -> Policy:
        """Read a policy directory (see :func:`read_directory`)."""
        return cls(*read_directory(directory))

    def top_files(self) -> list[str]:
        """The top-level ``*.policy`` files in C-locale order; PolicyError for a bad name."""
        found = []
        for path in self.sources:
            if "/" in path or not path.endswith(POLICY_SUFFIX) or path.startswith("."):
                continue
            if not _TOP_FILE.match(path[:-len(POLICY_SUFFIX)]):
                raise PolicyError(path, None, "file name", "a policy file name may hold only lowercase letters, "
                                  "digits, '_', '.' and '-' (any other *.policy file makes qrexec deny every call)")
            found.append(path)
        return sorted(found, key=lambda p: p.encode())

    @staticmethod
    def _resolve(path: str) -> str:
        """An include path (checked by the parser: NAME or include/NAME, maybe under POLICY_DIR) as a key of ``sources``."""
        return path[len(POLICY_DIR) + 1:] if path.startswith(POLICY_DIR + "/") else path

    def _load(self, path: str, fmt: str, stack: tuple, binding: tuple | None) -> list[Rule]:
        """The rules of one file, includes expanded; ``binding`` is (service, argument) for old-format files."""
        if path in stack:
            raise PolicyError(path, None, "!include", "include loop: " + " -> ".join(stack + (path,)))
        rules: list[Rule] = []
        for item in parse(self.sources[path], path, fmt):
            if isinstance(item, Rule):
                rules.append(item if binding is None else dataclasses.replace(
                    item, service=binding[0], argument=binding[1]))
            elif isinstance(item, (Include, IncludeService)):
                field = "!include" if isinstance(item, Include) else "!include-service"
                target = self._resolve(item.path)
                if target not in self.sources:
                    raise PolicyError(path, item.line, field, f"included file {item.path} does not exist")
                self.included.setdefault(target, []).append(path)
                if isinstance(item, IncludeService):
                    self._named.add(item.service)
                sub_fmt, sub_binding = (fmt, binding) if isinstance(item, Include) else (
                    "service", (item.service, item.argument))
                rules.extend(self._load(target, sub_fmt, stack + (path,), sub_binding))
            elif isinstance(item, IncludeDir):
                rules.extend(self._load_dir(item, path, stack))
        return rules

    def _load_dir(self, item: IncludeDir, path: str, stack: tuple) -> list[Rule]:
        directory = self._resolve(item.path)
        if directory not in self.directories:
            raise PolicyError(path, item.line, "!include-dir", f"directory {item.path} does not exist")
        rules = []
        members = sorted((p for p in self.sources if posixpath.dirname(p) == directory and p.endswith(POLICY_SUFFIX)
                          and not posixpath.basename(p).startswith(".")), key=lambda p: p.encode())
        for member in members:
            if not _TOP_FILE.match(posixpath.basename(member)[:-len(POLICY_SUFFIX)]):
                raise PolicyError(member, None, "file name", "invalid policy file name")
            self.included.setdefault(member, []).append(path)
            rules.extend(self._load(member, "new", stack + (path,), None))
        return rules

    def files_for_service(self, service: str) -> list[str]:
        """Top-level files (names without ``.policy``) with rules or ``!include-service`` lines for ``service`` (or ``*``)."""
        return [path[:-len(POLICY_SUFFIX)] for path, named in self.services.items() if named & {service, "*"}]

    def evaluate(self, service: str, argument: str, source: str, target: str, system: Mapping,
                 assume_yes_for_ask: bool = False) -> Decision:
        """What qrexec decides for a call.

        ``argument`` is the text after ``+`` (empty for none); ``target`` the
        requested one (a name, ``dom0``/``@adminvm``, ``uuid:UUID``,
        ``@default`` or empty, ``@dispvm``, ``@dispvm:NAME``); ``system``
        maps qube names (dom0 included) to :class:`QubeInfo` or dicts.  With
        ``assume_yes_for_ask`` an ``ask`` answers allow (as for the clipboard).
        """
        request = _Request(system, source, target)
        if request.source not in request.qubes:
            return Decision("deny", reason=f"no such source qube: {source}")
        if not (request.target in request.qubes or request.target in ("@default", "@dispvm")
                or token_kind(request.target) == "dispvm-template"):
            return Decision("deny", reason=f"no such target: {target}")
        for rule in self.rules:
            if (rule.service in ("*", service) and _argument_matches(rule.argument, argument)
                    and request.matches(rule.source, request.source, True)
                    and request.matches(rule.target, request.target, False)):
                return _resolve_action(rule, request, assume_yes_for_ask)
        return Decision("deny", reason="no rule matched")


def _resolve_action(rule: Rule, request: _Request, assume_yes: bool) -> Decision:
    """The decision of the first matching rule."""
    params = dict(rule.params)
    where = {"params": params, "file": rule.file, "line": rule.line, "rule": rule}
    if rule.action == "deny":
        return Decision("deny", reason=f"denied by {rule.file}:{rule.line}", **where)
    wanted = rule.redirect or request.target
    if rule.action == "ask" and assume_yes and wanted == "@default":
        wanted = rule.param("default_target") or wanted
    final, why = request.concrete(wanted)
    if rule.action == "ask" and not assume_yes:
        return Decision("ask", target=final, reason=f"ask by {rule.file}:{rule.line}", **where)
    if final is None:
        return Decision("deny", reason=f"{rule.action} by {rule.file}:{rule.line} but {why}", **where)
    return Decision("allow", target=final, reason=f"{rule.action} by {rule.file}:{rule.line}", **where)


def read_directory(directory: str) -> tuple[dict[str, str], list[str]]:
    """The files of a policy directory and of its subdirectories (one level), as :class:`Policy` takes them.

    Returns (relative path -> text, subdirectory names); names beginning with
    ``.`` are skipped, as qrexec skips them.
    """
    sources, directories = {}, []
    for entry in sorted(os.listdir(directory)):
        full = os.path.join(directory, entry)
        if entry.startswith("."):
            continue
        if os.path.isdir(full):
            directories.append(entry)
            for sub in sorted(os.listdir(full)):
                if not sub.startswith(".") and os.path.isfile(os.path.join(full, sub)):
                    sources[f"{entry}/{sub}"] = _read(os.path.join(full, sub))
        elif os.path.isfile(full):
            sources[entry] = _read(full)
    return sources, directories


def read_runtime(directory: str) -> dict[str, str]:
    """The files R4.3's qrexec reads from its runtime policy directory (``/run/qubes/policy.d``): the top-level
    ``*.policy`` files whose names do not begin with ``.`` (name -> text); none if the directory does not exist.

    qrexec merges them with the files of ``/etc/qubes/policy.d`` by name, the runtime copy winning on a clash
    (:func:`with_runtime`); R4.2 does not read the directory.
    """
    try:
        entries = sorted(os.listdir(directory))
    except FileNotFoundError:
        return {}
    return {entry: _read(os.path.join(directory, entry)) for entry in entries
            if entry.endswith(POLICY_SUFFIX) and not entry.startswith(".")
            and os.path.isfile(os.path.join(directory, entry))}


def with_runtime(sources: Mapping[str, str], runtime: Mapping[str, str]) -> dict[str, str]:
    """The policy directory's files with the runtime directory's top-level files merged in by name (R4.3)."""
    return {**sources, **runtime}


def includes(text: str) -> bool:
    """Whether a file has an ``!include`` line of any kind (its rules then depend on other files)."""
    return any(line.lstrip().startswith("!include") for line in text.splitlines())


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()
