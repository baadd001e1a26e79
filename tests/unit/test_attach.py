# SPDX-License-Identifier: GPL-3.0-or-later
"""The attach module's input checks and how it shows an attachment (no dom0 needed)."""

from __future__ import annotations

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import attach, devices, engine, os_install


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


@pytest.mark.parametrize("text", ["storage", "a:b:c", "a'b:loop0", None])
def test_assignments_attachments_and_media_read_a_device_alike(text):
    """devices.split_device is the one reading: an assignment, an attachment and an install medium refuse alike."""
    with pytest.raises(engine.PlanError) as assigned:
        devices.parse_device("qubes.sys-usb.devices[0]", {"class": "block", "device": text})
    assert assigned.value.field == "qubes.sys-usb.devices[0].device" and "BACKEND:PORT" in assigned.value.message
    with pytest.raises(engine.PlanError):
        attach.parse_device(text)
    with pytest.raises(os_install.InstallError) as medium:
        os_install._medium("media[0]", text)  # pylint: disable=protected-access
    assert medium.value.field == "media[0]" and "media:loop0" in str(medium.value)
    assert os_install._medium("media[0]", "media:loop0") == ("media", "loop0")  # pylint: disable=protected-access


def test_an_option_value_is_one_short_word():
    assert devices.option_text("o", True) == "True" and devices.option_text("o", 3) == "3"
    for bad in ("", "two words", "it's", 1.5, None):
        with pytest.raises(engine.PlanError):
            devices.option_text("o", bad)
