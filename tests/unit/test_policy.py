# SPDX-License-Identifier: GPL-3.0-or-later
"""The qrexec policy grammar, its refusals, rules as data, and evaluation with Qubes semantics."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.corral.qubes.plugins.module_utils import policy as P
from ansible_collections.corral.qubes.plugins.module_utils import policy_files
from rehearsal import policy_defaults
from rehearsal.policy_admin import PolicyStore

# -- generated policy text ----------------------------------------------------------

NAME = st.from_regex(r"\A[a-z][a-z0-9_.-]{0,12}\Z")
TAG = st.from_regex(r"\A[a-zA-Z0-9_-]{1,10}\Z")
UUID = st.uuids().map(lambda u: f"uuid:{u}")
SERVICE = st.from_regex(r"\A[A-Za-z0-9._-]{1,20}\Z")
ARGUMENT = st.one_of(st.just("*"), st.just("+"), st.from_regex(r"\A\+[A-Za-z0-9+._-]{1,10}\Z"))
TOKENS = {
    "name": NAME, "uuid": UUID, "wildcard": st.just("*"), "anyvm": st.just("@anyvm"),
    "adminvm": st.just("@adminvm"), "default": st.just("@default"), "dispvm": st.just("@dispvm"),
    "dispvm-template": NAME.map(lambda n: f"@dispvm:{n}"), "dispvm-tag": TAG.map(lambda t: f"@dispvm:@tag:{t}"),
    "tag": TAG.map(lambda t: f"@tag:{t}"), "type": st.sampled_from(P.VM_CLASSES).map(lambda c: f"@type:{c}"),
}


def tokens(kinds):
    """Any token of the given kinds."""
    return st.one_of(*(TOKENS[kind] for kind in kinds))


@st.composite
def rules(draw, old_format=False):
    """A valid rule line (parameters in any order, any spacing)."""
    action = draw(st.sampled_from(P.ACTIONS))
    target = draw(tokens(P.TARGET_KINDS))
    keys = draw(st.lists(st.sampled_from(P.ACTION_PARAMS[action]), unique=True))
    if action == "allow" and target == "@default" and "target" not in keys:
        keys.append("target")
    params = []
    for key in keys:
        if key in P.BOOLEAN_PARAMS:
            value = draw(st.sampled_from(("yes", "no")))
        elif key == "user":
            value = draw(st.from_regex(r"\A[a-z][a-z0-9_]{0,8}\Z"))
        else:
            value = draw(tokens(P.REDIRECT_KINDS))
        params.append(f"{key}={value}")
    source = draw(tokens(P.SOURCE_KINDS))
    space = draw(st.sampled_from((" ", "  ", "\t", " \t ")))
    if old_format:
        return space.join([source.replace("@", "$"), target, ",".join([action] + params)])
    service = draw(st.one_of(st.just("*"), SERVICE))
    argument = "*" if service == "*" else draw(ARGUMENT)
    return space.join([service, argument, source, target, action] + params)


COMMENT = st.from_regex(r"\A#[ -~]{0,30}\Z")
DIRECTIVE = st.one_of(
    NAME.map(lambda n: f"!include include/{n}"), NAME.map(lambda n: f"!include-dir {n}"),
    st.tuples(SERVICE, ARGUMENT, NAME).map(lambda t: f"!include-service {t[0]} {t[1]} include/{t[2]}"),
    st.just("!compat-4.0"))
LINE = st.one_of(rules(), COMMENT, st.just(""), st.just("   "), DIRECTIVE)
FILE = st.lists(LINE, max_size=12).map(lambda lines: "".join(line + "\n" for line in lines))


@given(FILE)
def test_render_of_parse_is_canonical(text):
    canonical = P.render(P.parse(text))
    assert P.render(P.parse(canonical)) == canonical
    assert P.parse(canonical) == P.parse(text)
    assert len(canonical.splitlines()) == len(text.splitlines())


@given(st.lists(st.one_of(rules(old_format=True), COMMENT), max_size=8))
def test_old_format_round_trip(lines):
    text = "".join(line + "\n" for line in lines)
    items = P.parse(text, fmt="service")
    canonical = P.render(items, fmt="service")
    assert P.parse(canonical, fmt="service") == items
    assert all("$" not in line for line in canonical.splitlines() if not line.startswith("#"))


@given(rules())
def test_rule_dicts_round_trip(line):
    rule = P.parse_line(line)
    assert P.rule_from_dict(rule.as_dict(), 0) == rule


def test_canonical_form():
    items = P.parse("  qubes.GetDate\t*  @anyvm @anyvm   allow notify=yes  target=dom0\n#  note \n\n")
    assert P.render(items) == "qubes.GetDate * @anyvm @anyvm allow target=dom0 notify=yes\n#  note\n\n"
    old = P.parse("$anyvm $adminvm allow,target=dom0,notify=no\n$include:include/x\n", fmt="service")
    assert old[0] == P.Rule(None, None, "@anyvm", "@adminvm", "allow", (("target", "dom0"), ("notify", "no")))
    assert old[1] == P.Include("include/x")
    assert P.render(old, fmt="service") == "@anyvm @adminvm allow,target=dom0,notify=no\n!include include/x\n"


# -- refusals ---------------------------------------------------------------------------

BAD = [
    # (line, field, part of the message)
    ("q * work personal permit", "action", "expected allow, deny or ask"),
    ("q * @anyvm @nosuch allow", "target", "invalid token '@nosuch'"),
    ("q * wo#rk personal allow", "comment", "inline comments"),
    ("q * work personal allow # why", "comment", "inline comments"),
    ("q * @default personal allow", "source", "not allowed as source"),
    ("q * @dispvm personal allow", "source", "not allowed as source"),
    ("q * work @default allow", "target=", "needs target="),
    ("q * work personal deny target=vault", "target=", "deny does not take target="),
    ("q * work personal deny user=root", "user=", "deny does not take user="),
    ("q * work personal allow default_target=vault", "default_target=", "allow does not take"),
    ("q * work personal allow notify=true", "notify=", "expected yes or no"),
    ("q * work personal ask autostart=1", "autostart=", "expected yes or no"),
    ("q * work personal allow notify=yes notify=no", "notify=", "more than once"),
    ("q * work personal allow colour=red", "colour=", "unknown option"),
    ("q * work personal allow target", "params", "PARAM=VALUE"),
    ("q * work personal allow target=*", "target=", "not allowed as target="),
    ("q * work personal allow target=@anyvm", "target=", "not allowed as target="),
    ("q * work personal ask default_target=@tag:x", "default_target=", "not allowed as default_target="),
    ("q * work personal allow target=@dispvm:@tag:x", "target=", "not allowed as target="),
    ("q * work @uuid:00000000-0000-0000-0000-000000000000 allow", "target", "uuid:UUID, without '@'"),
    ("q * work uuid:XYZ allow", "target", "invalid token"),
    ("q * work @type:Appvm allow", "target", "must be one of"),
    ("q+arg * work personal allow", "service", "invalid service"),
    ("q! * work personal allow", "service", "invalid service"),
    ("q arg work personal allow", "argument", "expected * (any), + (no argument) or +ARG"),
    ("q +a/b work personal allow", "argument", "invalid argument"),
    ("* +arg work personal allow", "argument", "a * service needs the * argument"),
    ("q * work personal", "line", "SERVICE ARGUMENT SOURCE TARGET ACTION"),
    ("q * work personal allow,target=dom0", "action", "old format"),
    ("!include", "directive", "!include PATH"),
    ("!include-service q * ", "directive", "!include-service SERVICE ARGUMENT PATH"),
    ("!include-service q+x * include/a", "service", "invalid service"),
    ("!includes x", "directive", "unknown directive"),
]


@pytest.mark.parametrize("line,field,message", BAD)
def test_bad_lines_name_file_line_and_field(line, field, message):
    text = "# first line is fine\nqubes.Filecopy * @anyvm @anyvm ask\n" + line + "\n"
    with pytest.raises(P.PolicyError) as info:
        P.parse(text, "30-user.policy")
    err = info.value
    assert (err.file, err.line, err.field) == ("30-user.policy", 3, field)
    assert message in err.message
    assert str(err) == f"30-user.policy:3: {field}: {err.message}"


def test_bad_old_format_lines():
    with pytest.raises(P.PolicyError, match=r"include/x:2: target=: deny does not take"):
        P.parse("mgmt @anyvm allow,target=dom0\nmgmt @anyvm deny,target=dom0\n", "include/x", fmt="service")
    with pytest.raises(P.PolicyError, match=r"include/x:1: directive: unknown directive '!include-dir'"):
        P.parse("!include-dir include\n", "include/x", fmt="service")


@pytest.mark.parametrize("name", ["30-user", "include/admin-local-rwx", "a_b-9"])
def test_valid_api_names(name):
    assert P.validate_name(name) == name


@pytest.mark.parametrize("name", ["30-user.policy", "User", "a.b", "a/b", "include/x.y", "", "../x", "include/", "a b"])
def test_bad_api_names(name):
    with pytest.raises(P.PolicyError) as info:
        P.validate_name(name)
    assert info.value.field == "name" and "lowercase letters" in str(info.value)


def test_file_paths():
    assert P.file_path("30-user") == "30-user.policy"
    assert P.file_path("include/admin-local-ro") == "include/admin-local-ro"


# -- rules as data ------------------------------------------------------------------------


def test_rule_from_dict():
    rule = P.rule_from_dict({"service": "admin.vm.List", "source": "mgmt", "target": "@anyvm",
                             "action": "allow", "redirect": "dom0", "notify": False}, 3)
    assert rule.render() == "admin.vm.List * mgmt @anyvm allow target=dom0 notify=no"
    assert rule.as_dict() == {"service": "admin.vm.List", "argument": "*", "source": "mgmt", "target": "@anyvm",
                              "action": "allow", "redirect": "dom0", "notify": False}


@pytest.mark.parametrize("item,field,message", [
    ({"service": "q", "source": "a", "target": "b", "action": "allow", "colour": "x"}, "colour", "unknown key"),
    ({"service": "q", "source": "a", "target": "b"}, "action", "missing"),
    ({"service": "q", "source": "a", "target": "b", "action": "deny", "redirect": "c"}, "redirect", "deny does not take"),
    ({"service": "q", "source": "a", "target": "b", "action": "allow", "redirect": "@anyvm"}, "redirect", "not allowed"),
    ({"service": "q", "source": "a", "target": "@default", "action": "allow"}, "redirect", "needs target="),
    ({"service": "q", "source": "@default", "target": "b", "action": "allow"}, "source", "not allowed as source"),
    ({"service": "q", "source": "a", "target": "b", "action": "allow", "notify": "maybe"}, "notify", "true/false"),
    ({"service": "q+x", "source": "a", "target": "b", "action": "allow"}, "service", "invalid service"),
    ({"service": "q", "argument": "x", "source": "a", "target": "b", "action": "allow"}, "argument", "+ARG"),
    ({"service": "q", "source": 5, "target": "b", "action": "allow"}, "source", "non-empty string"),
])
def test_bad_rule_dicts_name_index_and_key(item, field, message):
    with pytest.raises(P.PolicyError) as info:
        P.rule_from_dict(item, 7)
    assert (info.value.file, info.value.line, info.value.field) == ("rules[7]", None, field)
    assert message in info.value.message
    assert str(info.value).startswith(f"rules[7]: {field}: ")


# -- evaluation -----------------------------------------------------------------------------

SYSTEM = {
    "dom0": {"class": "AdminVM", "uuid": P.DOM0_UUID},
    "work": {"class": "AppVM", "tags": ["office"], "default_dispvm": "dvm",
             "uuid": "11111111-2222-3333-4444-555555555555"},
    "personal": {"class": "AppVM", "default_dispvm": "dvm"},
    "vault": {"class": "AppVM", "tags": ["secret"]},
    "dvm": {"class": "AppVM", "template_for_dispvms": True, "tags": ["dvms"]},
    "other-dvm": {"class": "AppVM", "template_for_dispvms": True},
    "disp7": {"class": "DispVM", "template": "dvm", "default_dispvm": "dvm"},
    "fedora": {"class": "TemplateVM"},
}


def evaluate(files, service, argument, source, target, **kw):
    return P.Policy(files).evaluate(service, argument, source, target, SYSTEM, **kw)


def test_first_match_across_files_in_c_locale_order():
    files = {"50-b.policy": "q * work vault deny\n", "30-a.policy": "q * work vault allow\n",
             "30-A-upper.txt": "not a policy file\n", "4-x.policy": "q * @anyvm @anyvm ask\n"}
    decision = evaluate(files, "q", "", "work", "vault")
    assert (decision.action, decision.file, decision.line) == ("allow", "30-a.policy", 1)
    files["30-a.policy"] = "# nothing\n"
    assert evaluate(files, "q", "", "work", "vault").file == "4-x.policy"  # "4" sorts after "3", before "5"
    del files["4-x.policy"]
    decision = evaluate(files, "q", "", "work", "vault")
    assert (decision.action, decision.file) == ("deny", "50-b.policy")
    assert evaluate(files, "other", "", "work", "vault") == P.Decision("deny", reason="no rule matched")


def test_bad_top_level_file_name_invalidates_the_policy():
    with pytest.raises(P.PolicyError, match="30-User.policy: file name:"):
        P.Policy({"30-User.policy": "", "90-x.policy": "q * @anyvm @anyvm allow\n"})
    assert P.Policy({".30-User.policy": "garbage", "README": "garbage"}).rules == []


@pytest.mark.parametrize("source,target,expected", [
    ("work", "vault", True), ("work", "dom0", False), ("dom0", "work", False),
    ("work", "@default", True), ("work", "@dispvm", True),
])
def test_anyvm_excludes_dom0_but_matches_special_targets(source, target, expected):
    decision = evaluate({"a.policy": "q * @anyvm @anyvm ask\n"}, "q", "", source, target)
    assert (decision.action == "ask") is expected


def test_dom0_aliases_and_wildcard():
    files = {"a.policy": "q * work @adminvm allow\nq * work uuid:00000000-0000-0000-0000-000000000000 deny\n"
                         "r * * * allow target=dom0\n"}
    for alias in ("dom0", "@adminvm", "uuid:" + P.DOM0_UUID):
        decision = evaluate(files, "q", "", "work", alias)
        assert (decision.action, decision.target, decision.line) == ("allow", "dom0", 1)
    assert evaluate(files, "r", "", "dom0", "work").target == "dom0"  # * matches dom0 too


def test_uuid_tokens_name_the_qube():
    files = {"a.policy": "q * uuid:11111111-2222-3333-4444-555555555555 vault allow\n"}
    assert evaluate(files, "q", "", "work", "vault").allowed
    assert evaluate(files, "q", "", "uuid:11111111-2222-3333-4444-555555555555", "vault").allowed
    assert not evaluate(files, "q", "", "personal", "vault").allowed


def test_tags_and_types():
    files = {"a.policy": "q * @tag:office @tag:secret allow\nq * @type:AppVM @type:TemplateVM ask\n"}
    assert evaluate(files, "q", "", "work", "vault").allowed
    assert not evaluate(files, "q", "", "personal", "vault").allowed
    assert evaluate(files, "q", "", "personal", "fedora").action == "ask"
    assert evaluate(files, "q", "", "fedora", "fedora").action == "deny"


def test_dispvm_targets():
    files = {"a.policy": "q * work @dispvm allow\nq * work @dispvm:other-dvm allow\n"
                         "q * personal @dispvm:dvm allow\nq * vault @dispvm:@tag:dvms allow\n"
                         "q * @dispvm:dvm vault allow\nq * @dispvm:@tag:dvms personal allow\n"}
    decision = evaluate(files, "q", "", "work", "@dispvm")
    assert (decision.target, decision.line) == ("@dispvm:dvm", 1)  # work's default_dispvm
    assert evaluate(files, "q", "", "work", "@dispvm:other-dvm").target == "@dispvm:other-dvm"
    assert not evaluate(files, "q", "", "work", "@dispvm:dvm").allowed  # @dispvm matches only the request @dispvm
    decision = evaluate(files, "q", "", "personal", "@dispvm")  # @dispvm:dvm matches @dispvm of a dvm default
    assert (decision.target, decision.line) == ("@dispvm:dvm", 3)
    assert evaluate(files, "q", "", "vault", "@dispvm:dvm").line == 4
    assert not evaluate(files, "q", "", "vault", "@dispvm:other-dvm").allowed  # not tagged dvms
    assert evaluate(files, "q", "", "disp7", "vault").line == 5  # a disposable of dvm as source
    assert evaluate(files, "q", "", "disp7", "personal").line == 6
    assert not evaluate(files, "q", "", "work", "vault").allowed


def test_dispvm_without_a_default_or_a_template_is_denied():
    files = {"a.policy": "q * @anyvm @dispvm allow\nq * @anyvm @anyvm allow\n"}
    decision = evaluate(files, "q", "", "vault", "@dispvm")
    assert decision.action == "deny" and "no default_dispvm" in decision.reason
    decision = evaluate(files, "q", "", "work", "@dispvm:personal")
    assert decision.action == "deny" and "not a disposable template" in decision.reason


@pytest.mark.parametrize("pattern,argument,matches", [
    ("*", "", True), ("*", "x", True), ("+", "", True), ("+", "x", False),
    ("+x", "x", True), ("+x", "", False), ("+x", "xy", False), ("+a+b", "a+b", True),
])
def test_argument_matching(pattern, argument, matches):
    files = {"a.policy": f"q {pattern} work vault allow\n"}
    assert evaluate(files, "q", argument, "work", "vault").allowed is matches


def test_service_wildcard():
    files = {"a.policy": "* * work vault allow\n"}
    assert evaluate(files, "anything", "arg", "work", "vault").allowed


def test_redirect_is_not_re_evaluated():
    files = {"a.policy": "q * work @default allow target=vault\nq * work vault deny\nq * work @anyvm allow target=personal\n"}
    decision = evaluate(files, "q", "", "work", "")
    assert (decision.action, decision.target, decision.params) == ("allow", "vault", {"target": "vault"})
    assert evaluate(files, "q", "", "work", "fedora").target == "personal"


def test_allow_without_target_for_default_is_denied():
    decision = evaluate({"a.policy": "q * @anyvm @anyvm allow\n"}, "q", "", "work", "@default")
    assert decision.action == "deny" and "no target" in decision.reason
    assert evaluate({"a.policy": "q * @anyvm @anyvm allow\n"}, "q", "", "work", "nosuch").action == "deny"


def test_ask_with_and_without_assume_yes():
    files = {"a.policy": "q * work @anyvm ask\nr * work @default ask default_target=vault\n"}
    decision = evaluate(files, "q", "", "work", "vault")
    assert (decision.action, decision.target, decision.rule.action) == ("ask", "vault", "ask")
    decision = evaluate(files, "q", "", "work", "vault", assume_yes_for_ask=True)
    assert (decision.action, decision.target) == ("allow", "vault")
    assert evaluate(files, "r", "", "work", "", assume_yes_for_ask=True).target == "vault"
    assert evaluate(files, "q", "", "work", "", assume_yes_for_ask=True).action == "deny"
    assert evaluate(files, "q", "", "work", "dom0", assume_yes_for_ask=True).action == "deny"  # @anyvm


def test_deny_keeps_its_params():
    decision = evaluate({"a.policy": "q * work vault deny notify=no\n"}, "q", "", "work", "vault")
    assert (decision.action, decision.params, decision.rule.render()) == (
        "deny", {"notify": "no"}, "q * work vault deny notify=no")


def test_unknown_source_is_denied():
    assert evaluate({"a.policy": "q * * * allow target=dom0\n"}, "q", "", "ghost", "dom0").action == "deny"


# -- includes ------------------------------------------------------------------------------


def test_includes_resolve_in_place():
    files = {
        "10-a.policy": "q * work vault deny\n!include include/more\n!include-dir extra\nq * @anyvm @anyvm allow\n",
        "include/more": "r * work vault allow\n",
        "extra/1.policy": "s * work vault ask\n", "extra/.hidden.policy": "garbage",
        "20-b.policy": "!include-service t +x include/old\n",
        "include/old": "$anyvm $anyvm allow,target=dom0\n!include include/older\n",
        "include/older": "work vault deny\n",
    }
    policy = P.Policy(files)
    assert [(r.service, r.file, r.line) for r in policy.rules] == [
        ("q", "10-a.policy", 1), ("r", "include/more", 1), ("s", "extra/1.policy", 1), ("q", "10-a.policy", 4),
        ("t", "include/old", 1), ("t", "include/older", 1)]
    assert policy.evaluate("t", "x", "work", "vault", SYSTEM).target == "dom0"
    assert policy.evaluate("t", "y", "work", "vault", SYSTEM).action == "deny"
    assert set(policy.included) == {"include/more", "extra/1.policy", "include/old", "include/older"}
    assert policy.files_for_service("t") == ["20-b"]
    assert policy.files_for_service("q") == ["10-a"]


@pytest.mark.parametrize("files,message", [
    ({"a.policy": "!include include/none\n"}, "a.policy:1: !include: included file include/none does not exist"),
    ({"a.policy": "!include-dir nodir\n"}, "a.policy:1: !include-dir: directory nodir does not exist"),
    ({"a.policy": "!include include/a\n", "include/a": "!include include/a\n"}, "include loop"),
    ({"a.policy": "!include /etc/passwd\n"}, "a.policy:1: !include: invalid path /etc/passwd: only files directly"),
    ({"a.policy": "!include ../x\n"}, "a.policy:1: !include: invalid path ../x"),
    ({"a.policy": "!include include/sub/x\n"}, "a.policy:1: !include: invalid path include/sub/x"),
    ({"a.policy": "!include-dir extra/deeper\n"}, "a.policy:1: !include-dir: invalid directory extra/deeper"),
    ({"a.policy": "!include-service q * include/o\n", "include/o": "q * a b allow\n"}, "include/o:1: action:"),
])
def test_invalid_includes(files, message):
    with pytest.raises(P.PolicyError, match=message.replace("(", r"\(")):
        P.Policy(files)


def test_absolute_include_paths_inside_the_policy_directory():
    files = {"a.policy": "!include /etc/qubes/policy.d/include/x\n", "include/x": "q * work vault allow\n"}
    assert P.Policy(files).evaluate("q", "", "work", "vault", SYSTEM).allowed


# -- the default policy of a fresh dom0 ----------------------------------------------------

CLIPBOARD_QUBES = ("secure", "personal", "work", "untrusted")
ALLOWED_PASTES = {("secure", "personal"), ("personal", "work"), ("work", "personal"), ("untrusted", "personal")}
CLIPBOARD_POLICY = """\
# Clipboard flows: only the listed pairs may paste.
qubes.ClipboardPaste * secure personal allow
qubes.ClipboardPaste * personal work allow
qubes.ClipboardPaste * work personal ask
qubes.ClipboardPaste * untrusted personal ask
qubes.ClipboardPaste * @anyvm @anyvm deny notify=no
"""


@pytest.mark.parametrize("release", ["4.2", "4.3"])
def test_default_policy_is_valid_and_denies_qubes_admin_access(release):
    policy = P.Policy(policy_defaults.default_files(release))
    system = dict(SYSTEM, mgmt={"class": "AppVM"})
    for service in ("admin.vm.List", "admin.vm.property.Set", "admin.vm.property.GetAll", "policy.Replace"):
        assert policy.evaluate(service, "", "mgmt", "dom0", system).action == "deny"
    assert policy.evaluate("qubes.GetDate", "", "work", "@default", system).target == "dom0"
    decision = policy.evaluate("qubes.ClipboardPaste", "", "dom0", "work", system)
    assert (decision.action, decision.file) == ("ask", "90-default-gui-daemon.policy")
    assert policy.evaluate("qubes.VMShell", "", "work", "@dispvm", system).target == "@dispvm:dvm"
    assert policy.evaluate("qubes.VMShell", "", "work", "vault", system).action == "deny"
    assert ("qubes.Notifications" in {r.service for r in policy.rules}) is (release == "4.3")
    assert policy.files_for_service("policy.Replace") == ["90-admin-policy-default"]


def test_an_admin_grant_in_the_include_files():
    files = policy_defaults.default_files("4.3")
    files["include/admin-local-rwx"] += "mgmt @tag:created-by-mgmt allow,target=dom0\n"
    system = dict(SYSTEM, mgmt={"class": "AppVM"}, made={"class": "AppVM", "tags": ["created-by-mgmt"]})
    policy = P.Policy(files)
    # the -ro include pulls in the -rwx rules: reading and writing both granted, globally nothing
    assert policy.evaluate("admin.vm.property.Get", "netvm", "mgmt", "made", system).target == "dom0"
    assert policy.evaluate("admin.vm.property.Set", "netvm", "mgmt", "made", system).target == "dom0"
    assert policy.evaluate("admin.vm.property.Set", "netvm", "mgmt", "work", system).action == "deny"
    assert policy.evaluate("admin.vm.List", "", "mgmt", "made", system).action == "deny"  # a global method


def test_clipboard_matrix_before_the_gui_daemon_defaults():
    files = policy_defaults.default_files("4.3")
    files["30-clipboard.policy"] = CLIPBOARD_POLICY
    system = {name: {"class": "AppVM"} for name in CLIPBOARD_QUBES}
    system["dom0"] = {"class": "AdminVM"}
    policy = P.Policy(files)
    seen = set()
    for source, target in itertools.permutations(CLIPBOARD_QUBES, 2):
        decision = policy.evaluate("qubes.ClipboardPaste", "", source, target, system, assume_yes_for_ask=True)
        assert decision.allowed is ((source, target) in ALLOWED_PASTES), (source, target)
        assert decision.file == "30-clipboard.policy"
        seen.add((source, target))
    assert len(seen) == 12
    # without the file, the defaults let every pair paste (ask, taken as yes)
    del files["30-clipboard.policy"]
    defaults = P.Policy(files)
    assert all(defaults.evaluate("qubes.ClipboardPaste", "", s, t, system, assume_yes_for_ask=True).allowed
               for s, t in itertools.permutations(CLIPBOARD_QUBES, 2))


def test_dispvm_by_uuid_as_a_redirect():
    """R4.3 names a disposable template by UUID as @dispvm:uuid:UUID."""
    system = dict(SYSTEM, dvm=dict(SYSTEM["dvm"], uuid="99999999-8888-7777-6666-555555555555"))
    text = "qubes.OpenURL * work @default allow target=@dispvm:uuid:99999999-8888-7777-6666-555555555555\n"
    assert P.render(P.parse(text)) == text
    decision = P.Policy({"30-a.policy": text}).evaluate("qubes.OpenURL", "", "work", "", system)
    assert decision.allowed and decision.target == "@dispvm:dvm"
    with pytest.raises(P.PolicyError, match="invalid token"):
        P.parse("qubes.OpenURL * work @default allow target=@dispvm:uuid:not-a-uuid\n")


class _Admin:
    """The policy admin API's reads over a dict of files (name -> text; include files as include/NAME)."""

    def __init__(self, files: dict, for_service: list):
        self.files, self.for_service, self.asked = files, for_service, []

    def get_files(self, service):
        self.asked.append(("GetFiles", service))
        return self.for_service

    def list(self):
        self.asked.append(("List", ""))
        return [name for name in self.files if not name.startswith("include/")]

    def include_list(self):
        self.asked.append(("include.List", ""))
        return [name.split("/", 1)[1] for name in self.files if name.startswith("include/")]

    def get(self, name):
        self.asked.append(("Get", name))
        return "sha256:x", self.files[name]

    def include_get(self, name):
        self.asked.append(("include.Get", name))
        return "sha256:x", self.files["include/" + name]


def test_an_audit_reads_the_files_of_its_service_and_everything_when_they_include():
    files = {"30-flows": "qubes.ClipboardPaste * a b allow\n", "50-other": "qubes.Filecopy * a b allow\n",
             "include/extra": "qubes.ClipboardPaste * a c allow\n"}
    admin = _Admin(files, ["30-flows"])
    store = policy_files.ApiStore(admin)
    assert set(store.read_for_service("qubes.ClipboardPaste")) == {"30-flows.policy"}
    assert admin.asked == [("GetFiles", "qubes.ClipboardPaste"), ("Get", "30-flows")] and store.calls == 2
    files["30-flows"] += "!include include/extra\n"
    admin.asked.clear()
    assert set(store.read_for_service("qubes.ClipboardPaste")) == {"30-flows.policy", "50-other.policy",
                                                                   "include/extra"}
    assert ("List", "") in admin.asked and ("include.Get", "extra") in admin.asked


def test_dom0_reads_the_directory_itself_and_asks_the_api_only_what_it_cannot_read(tmp_path):
    files = {"30-flows": "qubes.ClipboardPaste * a b allow\n", "50-other": "qubes.Filecopy * a b allow\n",
             "include/extra": "qubes.ClipboardPaste * a c allow\n", "29-transient": "qubes.ClipboardPaste * a d deny\n"}
    (tmp_path / "include").mkdir()
    for name in ("30-flows", "50-other"):
        (tmp_path / f"{name}.policy").write_text(files[name])
    (tmp_path / "include" / "extra").write_text(files["include/extra"])
    (tmp_path / ".corral-tmp-30-flows.policy").write_text("half written\n")  # qrexec skips dot files, so do we
    (tmp_path / "README").write_text("not a policy file\n")
    admin = _Admin(files, ["29-transient", "30-flows"])  # 29-transient: only the service knows it (/run on R4.3)
    store = policy_files.Dom0Store(str(tmp_path), admin)
    assert store.names() == ["30-flows", "50-other"]
    assert store.get("30-flows") == (policy_files.token_of(files["30-flows"].encode()), files["30-flows"])
    assert store.get("31-missing") is None and admin.asked == []
    every = store.read_all()
    assert every == {path: found for path, found in policy_files.DirectoryStore(str(tmp_path)).read_all().items()
                     if path.endswith(".policy") and not path.startswith(".") or path.startswith("include/")}
    assert set(every) == {"30-flows.policy", "50-other.policy", "include/extra"} and admin.asked == []
    # the files of a service: policy.GetFiles names them, this directory has all but one
    assert set(store.read_for_service("qubes.ClipboardPaste")) == {"29-transient.policy", "30-flows.policy"}
    assert admin.asked == [("GetFiles", "qubes.ClipboardPaste"), ("Get", "29-transient")]


class _Service:
    """The policy admin service, as far as a store may ask it: every question recorded, the files it names given."""

    def __init__(self, names=()):
        self.asked: list[str] = []
        self.names = list(names)

    def get_files(self, service):
        self.asked.append(f"policy.GetFiles+{service}")
        return self.names

    def get(self, name):
        self.asked.append(f"policy.Get+{name}")
        return "sha256:0", f"qubes.ClipboardPaste * work {name} deny\n"


def _dom0_dirs(tmp_path, release):
    etc, run = tmp_path / "policy.d", tmp_path / "runtime-policy.d"
    (etc / P.INCLUDE_DIR).mkdir(parents=True)
    run.mkdir()
    for path, text in policy_defaults.default_files(release).items():
        (etc / path).write_text(text)
    (etc / "30-flows.policy").write_text("qubes.ClipboardPaste * work personal allow\n")
    (run / "20-transient.policy").write_text("qubes.ClipboardPaste * work secure allow\n")
    (run / "90-default.policy").write_text("qubes.Filecopy * @anyvm @anyvm deny\n")
    return etc, run, PolicyStore(str(etc), release, str(run))


@pytest.mark.parametrize("release", ["4.3", "4.2"])
def test_dom0_store_finds_the_files_for_a_service_as_the_service_does(tmp_path, release):
    etc, run, service_side = _dom0_dirs(tmp_path, release)
    service = _Service()
    store = policy_files.Dom0Store(str(etc), service, release=release, runtime_directory=str(run))
    for name in ("qubes.ClipboardPaste", "qubes.Filecopy", "qubes.UpdatesProxy", "admin.vm.List"):
        found = store.read_for_service(name)
        expected = [policy_files.source_path(file) for file in service_side.files_for(name)]
        if any(P.includes(text) for _token, text in found.values()):
            assert set(expected) <= set(found), name  # every file, so that the includes resolve
        else:
            assert sorted(found) == sorted(expected), name
    assert service.asked == []
    clipboard = store.read_for_service("qubes.ClipboardPaste")
    # R4.3 reads the runtime directory too, its 90-default winning over /etc's; R4.2 does not read it
    assert ("20-transient.policy" in clipboard) == (release == "4.3")
    filecopy = store.read_for_service("qubes.Filecopy")
    assert (filecopy["90-default.policy"][1] == (run / "90-default.policy").read_text()) == (release == "4.3")


def test_dom0_store_asks_the_service_when_it_cannot_see_what_qrexec_reads(tmp_path):
    etc, run, _service_side = _dom0_dirs(tmp_path, "4.3")
    # the release unknown: which directories qrexec reads is not known
    service = _Service(["30-flows"])
    assert list(policy_files.Dom0Store(str(etc), service).read_for_service("qubes.ClipboardPaste")) == [
        "30-flows.policy"]
    assert service.asked == ["policy.GetFiles+qubes.ClipboardPaste"]
    # a runtime file including others: R4.3 resolves its includes against /run/qubes/policy.d
    (run / "25-included.policy").write_text("!include include/elsewhere\n")
    service = _Service(["20-transient"])
    found = policy_files.Dom0Store(str(etc), service, release="4.3", runtime_directory=str(run)).read_for_service(
        "qubes.ClipboardPaste")
    assert service.asked == ["policy.GetFiles+qubes.ClipboardPaste", "policy.Get+20-transient"]
    assert list(found) == ["20-transient.policy"]
