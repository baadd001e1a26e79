# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Qubes firewall rule grammar (``admin.vm.firewall.Get/Set`` lines).

One rule per line, space-separated ``key=value`` options, ``comment=`` last
(it may contain spaces).  qubesd accepts the options in any order and with
``dst4``/``dst6`` as synonyms of ``dsthost``; it answers in a fixed order with
IP hosts as ``dst4=a.b.c.d/len`` / ``dst6=...`` and ports as ``N-M``.

:func:`parse_rule` validates exactly as qubesd does (a :class:`RuleError`
where qubesd would refuse the whole ``Set``), and :meth:`Rule.render` gives
qubesd's own text, so comparing rendered rules is comparing canonical forms.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import string

ACTIONS = ("accept", "drop")
PROTOCOLS = ("tcp", "udp", "icmp")
SPECIAL_TARGETS = ("dns",)
OPTION_ORDER = ("action", "expire", "dsthost", "proto", "specialtarget", "dstports", "icmptype", "comment")
HOST_KEYS = ("dsthost", "dst4", "dst6")

_SAFE = set(string.ascii_letters + string.digits + ":;,./-_[]")
_SAFE_COMMENT = _SAFE | {" "}
_HOSTNAME = set(string.ascii_lowercase + string.digits + "-._")


class RuleError(ValueError):
    """A rule qubesd would refuse; ``field`` names the option at fault."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
        self.index: int | None = None
        """For a rule list: the position of the rule at fault."""


@dataclasses.dataclass(frozen=True)
class Rule:
    """One firewall rule in canonical form."""

    action: str
    dsthost: str | None = None
    """``a.b.c.d/len``, ``ipv6/len`` or a hostname."""
    dst_type: str | None = None
    """``dst4``, ``dst6`` or ``dsthost`` (hostname)."""
    proto: str | None = None
    dstports: tuple[int, int] | None = None
    icmptype: int | None = None
    specialtarget: str | None = None
    expire: int | None = None
    comment: str | None = None

    def render(self) -> str:
        """The rule as ``admin.vm.firewall.Get`` returns it."""
        ports = None if self.dstports is None else f"{self.dstports[0]}-{self.dstports[1]}"
        fields = (("action", self.action), ("expire", self.expire), (self.dst_type, self.dsthost),
                  ("proto", self.proto), ("specialtarget", self.specialtarget), ("dstports", ports),
                  ("icmptype", self.icmptype), ("comment", self.comment))
        return " ".join(f"{key}={value}" for key, value in fields if value is not None)

    def is_expired(self, now: float) -> bool:
        """Whether an ``expire`` time has passed."""
        return self.expire is not None and self.expire <= now

    def as_dict(self) -> dict:
        """The rule as data (keys as in the line syntax, only those set)."""
        out: dict = {"action": self.action}
        if self.dsthost is not None:
            out["dsthost"] = self.dsthost
        for key in ("proto", "specialtarget", "icmptype", "expire", "comment"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.dstports is not None:
            out["dstports"] = short_ports(self.dstports)
        return out


def short_ports(dstports: tuple[int, int]) -> str:
    """``443`` or ``8000-8100``: a port range as people write it (and nft reads it)."""
    low, high = dstports
    return str(low) if low == high else f"{low}-{high}"


def _check_charset(key: str, value: str) -> None:
    allowed = _SAFE_COMMENT if key == "comment" else _SAFE
    bad = sorted({c for c in value if c not in allowed})
    if bad:
        raise RuleError(f"{key}: forbidden character(s) {''.join(bad)!r}", key)


def _is_ip(family: int, text: str) -> bool:
    try:
        socket.inet_pton(family, text)
    except (OSError, ValueError):
        return False
    return True


def parse_host(value: str) -> tuple[str, str]:
    """(dst_type, canonical text) for a dsthost value; RuleError if invalid."""
    if value.count("/") > 1:
        raise RuleError(f"dsthost: too many '/' in {value!r}", "dsthost")
    host, sep, prefix = value.partition("/")
    if not sep:
        if _is_ip(socket.AF_INET6, host):
            return "dst6", f"{host}/128"
        if _is_ip(socket.AF_INET, host) and host.count(".") == 3:
            return "dst4", f"{host}/32"
        if not host:
            raise RuleError("dsthost: empty host", "dsthost")
        bad = sorted({c for c in host if c not in _HOSTNAME})
        if bad:
            raise RuleError(
                f"dsthost: invalid hostname {host!r} (only lowercase letters, digits, '-', '.', '_'; "
                f"not {''.join(bad)!r})", "dsthost")
        return "dsthost", host
    if not prefix.isdigit():
        raise RuleError(f"dsthost: invalid prefix length in {value!r}", "dsthost")
    length = int(prefix)
    if _is_ip(socket.AF_INET6, host):
        if length > 128:
            raise RuleError(f"dsthost: an IPv6 prefix length must be at most 128, not {length}", "dsthost")
        return "dst6", f"{host}/{length}"
    if _is_ip(socket.AF_INET, host) and host.count(".") == 3:
        if length > 32:
            raise RuleError(f"dsthost: an IPv4 prefix length must be at most 32, not {length}", "dsthost")
        return "dst4", f"{host}/{length}"
    raise RuleError(f"dsthost: invalid IP address {host!r}", "dsthost")


def parse_ports(value: str) -> tuple[int, int]:
    """``N`` or ``N-M`` (0-65535, N <= M)."""
    low, sep, high = value.partition("-")
    if not sep:
        high = low
    if not (low.isdigit() and high.isdigit()):
        raise RuleError(f"dstports: {value!r} is not a port or a range N-M", "dstports")
    first, last = int(low), int(high)
    if first > 65535 or last > 65535:
        raise RuleError(f"dstports: {value!r} is out of range 0-65535", "dstports")
    if first > last:
        raise RuleError(f"dstports: range {value!r} ends before it starts", "dstports")
    return first, last


def make_rule(options: dict[str, str]) -> Rule:
    """Build and validate a rule from ``key: text`` options (as in the line syntax)."""
    values: dict = {}
    for key, value in options.items():
        if key in HOST_KEYS:
            dst_type, host = parse_host(value)
            if key != "dsthost" and key != dst_type:
                raise RuleError(f"{key}: {value!r} is not an address of that family", key)
            values["dsthost"], values["dst_type"] = host, dst_type
        elif key == "action":
            if value not in ACTIONS:
                raise RuleError(f"action: expected accept or drop, not {value!r}", key)
            values["action"] = value
        elif key == "proto":
            if value not in PROTOCOLS:
                raise RuleError(f"proto: expected tcp, udp or icmp, not {value!r}", key)
            values["proto"] = value
        elif key == "specialtarget":
            if value not in SPECIAL_TARGETS:
                raise RuleError(f"specialtarget: expected dns, not {value!r}", key)
            values["specialtarget"] = value
        elif key == "dstports":
            values["dstports"] = parse_ports(value)
        elif key == "icmptype":
            if not (value.isdigit() and len(value) <= 3 and int(value) <= 255):
                raise RuleError(f"icmptype: expected a number 0-255, not {value!r}", key)
            values["icmptype"] = int(value)
        elif key == "expire":
            if not value.isdigit():
                raise RuleError(f"expire: expected seconds since the epoch, not {value!r}", key)
            values["expire"] = int(value)
        elif key == "comment":
            _check_charset(key, value)
            values["comment"] = value
        else:
            raise RuleError(f"unknown firewall option {key!r}", key)
    if "action" not in values:
        raise RuleError("a rule needs action=accept or action=drop", "action")
    if "dstports" in values and values.get("proto") not in ("tcp", "udp"):
        raise RuleError("dstports: valid only with proto tcp or udp", "dstports")
    if "icmptype" in values and values.get("proto") != "icmp":
        raise RuleError("icmptype: valid only with proto icmp", "icmptype")
    return Rule(**values)


def parse_rule(line: str) -> Rule:
    """Parse one rule line the way qubesd does (any option order, dst4/dst6 synonyms)."""
    head, sep, comment = line.partition("comment=")
    options: dict[str, str] = {}
    if sep and comment:
        options["comment"] = comment
    for field in head.strip().split(" "):
        key, eq, value = field.partition("=")
        if not eq:
            raise RuleError(f"malformed option {field!r} (expected key=value)", key or None)
        if key in options or (key in HOST_KEYS and any(k in options for k in HOST_KEYS)):
            raise RuleError(f"option {key!r} given twice", key)
        if key != "comment":
            _check_charset(key, value)
        options[key] = value
    return make_rule(options)


def parse_rules(text: str) -> list[Rule]:
    """Parse a ``firewall.Set`` payload / ``firewall.Get`` reply (one rule per line)."""
    return [parse_rule(line) for line in text.splitlines()]


def render_rules(rules) -> str:
    """The ``firewall.Get`` text for rules (LF-terminated lines)."""
    return "".join(rule.render() + "\n" for rule in rules)


DEFAULT_RULES = (Rule(action="accept"),)
"""What a qube without firewall settings has: accept everything."""

# ---------------------------------------------------------------- rules as data

RULE_KEYS = ("action", "dsthost", "proto", "dstports", "icmptype", "specialtarget", "expire", "comment")
"""Keys of a rule given as a dict (the line syntax's option names)."""

POLICIES = ("whitelist", "allow_all", "exact")
DNS_RULE = Rule(action="accept", specialtarget="dns")


def canonical(rule: Rule) -> Rule:
    """The rule with its network in normal form (``192.0.2.7/24`` -> ``192.0.2.0/24``, IPv6 compressed).

    qubesd keeps an address as it was given; the netvm's nftables treat both
    spellings alike, so comparisons use this form on both sides.
    """
    if rule.dst_type in ("dst4", "dst6"):
        return dataclasses.replace(rule, dsthost=str(ipaddress.ip_network(rule.dsthost, strict=False)))
    return rule


def _option_text(key: str, value) -> str:
    """A rule dict value as line-syntax text (numbers allowed where the option is numeric)."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict, float)):
        expected = {"dstports": "a port or a range like 8000-8100 (one per rule)",
                    "icmptype": "a number 0-255", "expire": "seconds since the epoch, or +seconds from now"}
        raise RuleError(f"{key}: expected {expected.get(key, 'a string')}, not {value!r}", key)
    if isinstance(value, int):
        if key not in ("dstports", "icmptype", "expire"):
            raise RuleError(f"{key}: expected a string, not the number {value}", key)
        return str(value)
    return str(value)


@dataclasses.dataclass(frozen=True)
class WantedRule:
    """A rule from data; ``lifetime`` is set when ``expire`` was relative (``+seconds``)."""

    rule: Rule
    lifetime: int | None = None

    def matches(self, current: Rule, now: float) -> bool:
        """Whether ``current`` (as read back) already is this rule.

        A relative expiry matches the same rule with any expiry still to come
        within its lifetime, so re-running does not push the deadline on.
        """
        if self.lifetime is None:
            return canonical(current) == self.rule
        if current.expire is None or not now < current.expire <= now + self.lifetime:
            return False
        return canonical(current) == dataclasses.replace(self.rule, expire=current.expire)


def rule_from_data(item, now: float, default_action: str | None = None) -> WantedRule:
    """Validate one rule dict (keys :data:`RULE_KEYS`) into canonical form.

    Raises :class:`RuleError` naming the key at fault.  Beyond qubesd's own
    checks it refuses what could never match (``specialtarget`` with a host,
    ``dns`` on another port) and expiry times already past.
    """
    if not isinstance(item, dict):
        raise RuleError(f"a rule is a dict of {', '.join(RULE_KEYS)}, not {item!r}")
    if not item:
        raise RuleError("empty rule: give at least action (or a destination in a whitelist)")
    unknown = sorted(str(key) for key in item if key not in RULE_KEYS)
    if unknown:
        raise RuleError(f"unknown key(s) {', '.join(unknown)}; a rule has {', '.join(RULE_KEYS)}", unknown[0])
    options = {key: _option_text(key, value) for key, value in item.items()}
    options.setdefault("action", default_action or "")
    if not options["action"]:
        raise RuleError("a rule needs action: accept or drop", "action")
    host = options.get("dsthost", "")
    if host != host.lower() and ":" not in host:
        raise RuleError(f"dsthost: qubesd accepts hostnames in lowercase only: write {host.lower()!r}", "dsthost")
    lifetime = None
    expire = options.get("expire", "")
    if expire.startswith("+") and expire[1:].isdigit():
        lifetime = int(expire[1:])
        options["expire"] = str(int(now) + lifetime)
    elif expire.startswith("+"):
        raise RuleError(f"expire: expected +seconds (like +3600), not {expire!r}", "expire")
    elif expire.isdigit() and int(expire) <= now:
        raise RuleError(f"expire: {expire} is in the past; qubesd would drop the rule at once", "expire")
    rule = canonical(make_rule(options))
    if rule.dst_type == "dsthost":
        _check_numeric_name(rule.dsthost)
    if rule.specialtarget and rule.dsthost:
        raise RuleError("specialtarget: dns names the netvm's DNS servers; it cannot also have a dsthost",
                        "specialtarget")
    if rule.specialtarget and rule.dstports not in (None, (53, 53)):
        raise RuleError("dstports: a specialtarget=dns rule only matches port 53", "dstports")
    return WantedRule(rule, lifetime)


def _check_numeric_name(host: str) -> None:
    """Refuse a hostname that only looks like an IPv4 address.

    qubesd takes ``192.0.2.256`` or ``10.1`` as a hostname, for the netvm to resolve when it applies
    the rules.  No top-level domain is all digits, so such a name never resolves as a name; the
    resolver reads the shorthands ``inet_aton`` accepts (``10.1``, ``3232235777``) as another
    address than the one written, and refuses the rest (``192.0.2.256``).
    """
    try:
        packed = socket.inet_aton(host)
    except (OSError, ValueError):
        packed = None
    if packed is not None:
        address = socket.inet_ntoa(packed)
        raise RuleError(f"dsthost: {host!r} is a shorthand the netvm's resolver reads as the IPv4 address "
                        f"{address}: write {address} (or the address you meant)", "dsthost")
    if host.rstrip(".").rpartition(".")[2].isdigit():
        raise RuleError(f"dsthost: {host!r} is not an IPv4 address (four numbers 0-255) and never resolves "
                        f"as a hostname (no top-level domain is all digits)", "dsthost")


def _matches_everything(rule: Rule) -> bool:
    return rule.dsthost is None and rule.proto is None and rule.specialtarget is None and rule.expire is None


def _accepts_every_address(rule: Rule) -> str | None:
    """What a permanent accept rule opens to every address of a family on every port (``0.0.0.0/0``
    or ``::/0``, or no destination, without a port), or None.  ICMP and port-bound rules are kept."""
    if rule.action != "accept" or rule.expire is not None or rule.specialtarget is not None:
        return None
    if rule.dstports is not None or rule.proto == "icmp":
        return None
    if rule.dsthost is None:
        where = "every address"
    elif rule.dst_type in ("dst4", "dst6") and rule.dsthost.endswith("/0"):
        where = f"every IPv{rule.dst_type[-1]} address ({rule.dsthost})"
    else:
        return None
    return f"{where} with {rule.proto or 'any protocol'} on every port"


def rules_for_policy(policy: str, items, dns: bool | None, now: float) -> list[WantedRule]:
    """The full rule list of a policy: ``whitelist`` (the items, accept by default, then DNS unless
    ``dns`` is false, then the implicit drop), ``allow_all`` (one accept), ``exact`` (the items).

    Raises :class:`RuleError` with ``index`` set for a rule at fault.
    """
    if policy not in POLICIES:
        raise RuleError(f"policy: expected one of {', '.join(POLICIES)}, not {policy!r}", "policy")
    if dns is not None and policy != "whitelist":
        raise RuleError("dns: only a whitelist adds the DNS rule; with other policies list it as a rule", "dns")
    items = list(items or [])
    if policy == "allow_all":
        if items:
            raise RuleError("rules: allow_all accepts everything and takes no rules", "rules")
        return [WantedRule(rule) for rule in DEFAULT_RULES]
    wanted: list[WantedRule] = []
    default_action = "accept" if policy == "whitelist" else None
    for index, item in enumerate(items):
        try:
            rule = rule_from_data(item, now, default_action)
            _check_reachable(rule.rule, [w.rule for w in wanted], policy)
        except RuleError as exc:
            exc.index = index
            raise
        wanted.append(rule)
    if policy == "whitelist" and dns is not False and DNS_RULE not in [w.rule for w in wanted]:
        wanted.append(WantedRule(DNS_RULE))
    return wanted


def _check_reachable(rule: Rule, before: list[Rule], policy: str) -> None:
    """Refuse a rule that repeats one before it or can never be reached."""
    if rule in before:
        raise RuleError(f"repeats rule {before.index(rule)}")
    total = next((index for index, earlier in enumerate(before) if _matches_everything(earlier)), None)
    if total is not None:
        raise RuleError(f"can never match: rule {total} before it matches everything")
    if policy == "whitelist" and _matches_everything(rule) and rule.action == "accept":
        raise RuleError("accepts everything, which is no whitelist: use policy allow_all", "action")
    opened = _accepts_every_address(rule) if policy == "whitelist" else None
    if opened:
        field = "dsthost" if rule.dsthost is not None else "proto"
        raise RuleError(f"{field}: accepts {opened}, which is no whitelist: name the destinations, "
                        f"add dstports, or use policy allow_all", field)
