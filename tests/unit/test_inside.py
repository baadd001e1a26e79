# SPDX-License-Identifier: GPL-3.0-or-later
"""The digest of what is applied inside a qube, and the inside_plan filter."""

from __future__ import annotations

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.corral.qubes.plugins.filter.inside import inside_plan, inside_redacted, template_clones
from ansible_collections.corral.qubes.plugins.module_utils import inside

ENTRY = {"packages": ["keepassxc", "vim-enhanced"], "packages_absent": ["nano"],
         "files": [{"dest": "/etc/motd", "content": "secure\n"},
                   {"dest": "/etc/skel/.vimrc", "src": "vimrc", "mode": "0600"}]}
HASHES = {"vimrc": "ab" * 32}


def digest(entry, hashes=None):
    return inside.digest(inside.applied("t", entry, HASHES if hashes is None else hashes))


def test_the_digest_ignores_order_and_repeats():
    shuffled = {"packages": ["vim-enhanced", "keepassxc", "keepassxc"], "packages_absent": ["nano"],
                "files": list(reversed(ENTRY["files"]))}
    assert digest(shuffled) == digest(ENTRY)
    assert digest(ENTRY).startswith("sha256:")


@pytest.mark.parametrize("change", [
    lambda e: e["packages"].append("git"),
    lambda e: e["packages_absent"].clear(),
    lambda e: e["files"][0].update(content="other\n"),
    lambda e: e["files"][0].update(mode="0600"),
    lambda e: e["files"][0].update(owner="user"),
    lambda e: e["files"][0].update(dest="/etc/issue"),
])
def test_every_applied_detail_changes_the_digest(change):
    entry = {"packages": list(ENTRY["packages"]), "packages_absent": list(ENTRY["packages_absent"]),
             "files": [dict(item) for item in ENTRY["files"]]}
    change(entry)
    assert digest(entry) != digest(ENTRY)


def test_a_source_file_enters_through_its_hash():
    assert digest(ENTRY, {"vimrc": "cd" * 32}) != digest(ENTRY)


def test_nothing_applied_has_no_digest():
    assert digest({}) == ""
    assert digest({"packages": [], "files": []}) == ""


@pytest.mark.parametrize("entry, path", [
    ({"packages": "vim"}, "t.packages"),
    ({"packages": ["vim enhanced"]}, "t.packages[0]"),
    ({"packages": ["vim"], "packages_absent": ["vim"]}, "t.packages_absent"),
    ({"files": [{"dest": "etc/motd", "content": ""}]}, "t.files[0].dest"),
    ({"files": [{"dest": "/etc/../motd", "content": ""}]}, "t.files[0].dest"),
    ({"files": [{"dest": "/a", "content": ""}, {"dest": "/a", "content": "x"}]}, "t.files[1].dest"),
    ({"files": [{"dest": "/a"}]}, "t.files[0]"),
    ({"files": [{"dest": "/a", "content": "", "src": "x"}]}, "t.files[0]"),
    ({"files": [{"dest": "/a", "content": "", "mode": 644}]}, "t.files[0].mode"),
    ({"files": [{"dest": "/a", "content": "", "mode": "u+rw"}]}, "t.files[0].mode"),
    ({"files": [{"dest": "/a", "content": "", "owner": "Bad Name"}]}, "t.files[0].owner"),
    ({"files": [{"dest": "/a", "content": "", "modee": "0600"}]}, "t.files[0].modee"),
    ({"files": [{"dest": "/a", "src": "missing"}]}, "t.files[0].src"),
    ({"files": [{"dest": "/a", "content": "", "no_log": "yes"}]}, "t.files[0].no_log"),
])
def test_bad_entries_name_their_path(entry, path):
    with pytest.raises(inside.InsideError) as info:
        inside.applied("t", entry, HASHES)
    assert info.value.path == path


def test_the_plan_compares_the_recorded_digest():
    want = digest(ENTRY)
    current = {"a": {"state": "halted", "features": {"corral-inside-digest": want}},
               "b": {"state": "running", "features": {}}}
    plan = inside_plan({"a": ENTRY, "b": ENTRY, "c": ENTRY}, current, HASHES)
    assert [(item["name"], item["changed"], item["running"], item["exists"]) for item in plan] == [
        ("a", False, False, True), ("b", True, True, True), ("c", True, False, False)]
    assert plan[1]["recorded"] == "" and plan[1]["digest"] == want


def test_the_plan_refuses_unknown_keys_but_the_roles_own():
    with pytest.raises(AnsibleFilterError, match=r"a\.pakages: unknown key"):
        inside_plan({"a": {"pakages": ["vim"]}}, {})
    plan = inside_plan({"a": {"clone_from": "fedora-42-minimal", "packages": ["vim"]}}, {}, {},
                       "corral-inside-digest", ["clone_from"])
    assert plan[0]["packages"] == ["vim"]


def test_the_plan_refuses_a_bad_qube_name():
    with pytest.raises(AnsibleFilterError, match="not a qube name"):
        inside_plan({"bad name": {}}, {})


SECRET = {"files": [{"dest": "/etc/vpn.key", "content": "KEY\n", "mode": "0600", "no_log": True},
                    {"dest": "/etc/vpn.conf", "content": "remote vpn\n"}]}


def test_a_secret_file_counts_in_the_digest_but_its_hash_is_not_printed():
    plan = inside_plan({"a": SECRET}, {})[0]
    other_key = {"files": [{**SECRET["files"][0], "content": "KEY2\n"}, SECRET["files"][1]]}
    assert plan["digest"] == digest(SECRET) != digest(other_key)
    hashes = {item["dest"]: item["sha256"] for item in plan["files"]}
    assert hashes["/etc/vpn.key"] == inside.HIDDEN and len(hashes["/etc/vpn.conf"]) == 64
    # marking a file no_log changes what is printed, not what is applied
    assert digest({"files": [{**SECRET["files"][0], "no_log": False}, SECRET["files"][1]]}) == digest(SECRET)


def test_the_redacted_layout_hides_secret_content_and_keeps_the_shape():
    entries = {"a": SECRET, "b": {"files": [{"dest": "/x", "content": 5, "no_log": True},
                                            {"dest": "/y", "content": "z", "no_log": "yes"}]}, "c": "odd"}
    out = inside_redacted(entries)
    assert out["a"]["files"] == [{**SECRET["files"][0], "content": inside.HIDDEN}, SECRET["files"][1]]
    assert out["b"]["files"][0]["content"] == 5  # not a string: kept for the check to name
    assert out["b"]["files"][1]["content"] == inside.HIDDEN  # a mistyped no_log hides
    assert out["c"] == "odd" and SECRET["files"][0]["content"] == "KEY\n"  # the input is not changed


def test_template_clones_are_the_entries_with_clone_from_in_order():
    entries = {"fedora-42-xfce": {"packages": ["vim"]},
               "fedora-42-secure": {"clone_from": "fedora-42-minimal", "packages": ["keepassxc"]},
               "fedora-42-work": {"clone_from": "fedora-42-xfce", "label": "blue", "restart_qubes": True}}
    clones = template_clones(entries)
    assert list(clones) == ["fedora-42-secure", "fedora-42-work"]
    assert clones["fedora-42-secure"] == {"class": "TemplateVM", "clone_from": "fedora-42-minimal", "label": "black",
                                          "mark_created": True}
    assert clones["fedora-42-work"]["label"] == "blue" and template_clones(entries, "gray")["fedora-42-secure"][
        "label"] == "gray"
    assert template_clones({}) == {}
    for bad in ([], {"t": "clone"}):
        with pytest.raises(AnsibleFilterError, match="template_clones"):
            template_clones(bad)


ROLE_KEYS = ["clone_from", "label", "restart_qubes"]


@pytest.mark.parametrize("entries, message", [
    ({"fedora-42-xfce": {"packages": ["vim"], "restart": True}}, "fedora-42-xfce.restart: unknown key"),
    ({"fedora-42-xfce": {"files": [{"dest": "etc/motd", "content": ""}]}}, "fedora-42-xfce.files[0].dest"),
    ({"fedora-42-xfce": {"files": [{"dest": "/etc/motd", "src": "motd"}]}}, "no content hash was given for motd"),
    ({"bad name!": {}}, "is not a qube name"),
    ({"fedora-42-secure": {"clone_from": "fedora-42-minimal", "packages": "vim"}}, "fedora-42-secure.packages"),
])
def test_template_clones_with_the_role_keys_checks_every_entry_first(entries, message):
    """Given the role's keys, a bad entry fails, even one that is not a clone, naming its template and field."""
    with pytest.raises(AnsibleFilterError, match="template_clones: .*" + re.escape(message)):
        template_clones(entries, extra_keys=ROLE_KEYS)
    template_clones(entries)  # without them only the clones' own keys matter (an entry's inside is not looked at)


def test_template_clones_with_the_role_keys_takes_the_hashes_of_src_files():
    entries = {"fedora-42-secure": {"clone_from": "fedora-42-minimal", "label": "black", "restart_qubes": True,
                                    "files": [{"dest": "/etc/motd", "src": "motd"}]}}
    clones = template_clones(entries, extra_keys=ROLE_KEYS, source_hashes={"motd": "a" * 64})
    assert clones == template_clones(entries) and list(clones) == ["fedora-42-secure"]
    assert inside_plan(entries, {}, {"motd": "a" * 64}, extra_keys=ROLE_KEYS)[0]["changed"]
