# SPDX-License-Identifier: GPL-3.0-or-later
"""The attach module's input checks and how it shows an attachment (no dom0 needed)."""

from __future__ import annotations

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import attach, engine


@pytest.mark.parametrize("text", ["storage", ":loop0", "storage:", "a:b:c", "st orage:loop0", "a+b:loop0", None, 7])
def test_a_device_is_backend_and_port(text):
    with pytest.raises(engine.PlanError) as caught:
        attach.parse_device(text)
    assert caught.value.field == "device" and "BACKEND:PORT" in str(caught.value)


def test_a_device_splits_at_its_colon():
    assert attach.parse_device("sys-usb:sda1") == ("sys-usb", "sda1")


def test_options_are_sent_as_qubesd_keeps_them():
    assert attach.parse_options("block", {"read-only": True, "frontend-dev": "xvdi", "devtype": "cdrom"}) == {
        "devtype": "cdrom", "frontend-dev": "xvdi", "read-only": "True"}
    assert attach.parse_options("block", {"read-only": False}) == {"read-only": "False"}


@pytest.mark.parametrize("options, field", [
    ({"fast": True}, "options.fast"),
    ({"read-only": "maybe"}, "options.read-only"),
    ({"devtype": "floppy"}, "options.devtype"),
    ({"frontend-dev": "xvdb"}, "options.frontend-dev"),
    ({"frontend-dev": "sda"}, "options.frontend-dev"),
    ({"frontend-dev": "xvd'i"}, "options.frontend-dev"),
    ([], "options"),
])
def test_bad_options_name_their_field(options, field):
    with pytest.raises(engine.PlanError) as caught:
        attach.parse_options("block", options)
    assert caught.value.field == field


def test_an_attachment_is_shown_with_its_options_and_whether_it_is_assigned():
    manual = {"backend": "storage", "port": "loop0", "mode": "manual", "options": {"read-only": "True"}, "manual": True}
    assert attach.shown(manual) == "storage:loop0 (read-only=True)"
    assert attach.shown(dict(manual, options={})) == "storage:loop0"
    assert attach.shown(dict(manual, mode="required", manual=False)) == "storage:loop0 (assigned required, read-only=True)"
    assert attach.shown(dict(manual, mode="", manual=False, options={})) == "storage:loop0 (assigned)"
