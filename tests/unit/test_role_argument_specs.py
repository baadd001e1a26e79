# SPDX-License-Identifier: GPL-3.0-or-later
"""corral.qubes.role_arguments' helpers: the roles it knows, its option, the plain copy it validates."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.corral.qubes.plugins.action import role_arguments


class Tagged(str):
    """A str subclass, as ansible-core 2.19 templates values (with their tags)."""


class TaggedInt(int):
    pass


def test_the_roles_with_an_argument_spec():
    roles = role_arguments.collection_roles()
    assert {"fedora", "hardware", "qubes", "whonix", "windows", "bsd", "yubikey"} <= set(roles)


def test_entries_take_a_name_or_a_name_and_entry_point():
    assert role_arguments.parse_entries(["corral.qubes.fedora", {"name": "qubes", "entry_point": "converge"}]) == \
        [("fedora", "main"), ("qubes", "converge")]
    for bad, words in [([], "non-empty list"), ("corral.qubes.fedora", "non-empty list"),
                       ([{"role": "fedora"}], "roles[0]: expected a role name"),
                       ([{"name": "fedora", "tasks_from": "x"}], "roles[0]: expected"),
                       (["corral.qubes.fedora", "other.collection.role"], "roles[1]: 'other.collection.role' is not")]:
        with pytest.raises(ValueError, match=r".*") as raised:
            role_arguments.parse_entries(bad)
        assert words in str(raised.value), (bad, str(raised.value))


def test_the_validated_copy_is_plain_data():
    work = {"memory": TaggedInt(400), "tags": (Tagged("domain"),), "ok": True, "none": None, "ratio": 0.5}
    given = {Tagged("layout"): {Tagged("work"): work}}
    got = role_arguments.plain(given)
    assert got == {"layout": {"work": {"memory": 400, "tags": ["domain"], "ok": True, "none": None, "ratio": 0.5}}}
    plain_types = {type(next(iter(got))), type(got["layout"]["work"]["memory"]), type(got["layout"]["work"]["tags"][0])}
    assert plain_types == {str, int} and got["layout"]["work"]["ok"] is True
    assert isinstance(next(iter(given)), Tagged)  # the variables themselves are left as they are
    assert copy.deepcopy(got) == got
