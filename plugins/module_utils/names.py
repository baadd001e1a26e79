# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Naming rules of Qubes objects: qube names, tags, features, labels.

Each check returns None when the name is valid, otherwise the reason as a
sentence (the text qubesd uses where it gives one), so modules can validate
input before any call and the rehearsal dom0 can refuse what qubesd refuses.
"""

from __future__ import annotations

import re

RELEASES = ("4.2", "4.3")
DEFAULT_RELEASE = "4.3"

_VM_NAME = {
    "4.2": re.compile(r"\A[a-zA-Z][a-zA-Z0-9_-]*\Z"),
    "4.3": re.compile(r"\A[a-zA-Z][a-zA-Z0-9_.-]*\Z"),
}
VM_NAME_MAX = 31

_TAG = re.compile(r"\A[a-zA-Z0-9_-]+\Z")
_FEATURE = re.compile(r"\A[a-zA-Z0-9_.-]+\Z")
_LABEL = re.compile(r"\A[a-zA-Z0-9_.-]+\Z")


def vm_name_error(name: str, release: str = DEFAULT_RELEASE) -> str | None:
    """Why ``name`` is not a valid qube name (None if it is), in qubesd's words."""
    if not isinstance(name, str):
        return "VM name must be string, {!r} found".format(type(name).__name__)
    if len(name) > VM_NAME_MAX:
        return f"VM name must be shorter than {VM_NAME_MAX + 1} characters"
    if release != "4.2" and (name[:1] in ("-", "_", ".") or name[:1].isdigit()):
        return "VM name cannot start with hyphen, underscore, dot or numbers"
    if not _VM_NAME[release].match(name):
        return "VM name contains illegal characters"
    if name == "Domain-0":
        return "VM name cannot be 'Domain-0'"
    if name in ("none", "default"):
        return "VM name cannot be 'none' nor 'default'"
    if name.endswith("-dm"):
        return "VM name cannot end with -dm"
    return None


def tag_error(tag: str) -> str | None:
    """Why ``tag`` is not a valid tag (qubesd: letters, digits, '_' and '-')."""
    if not isinstance(tag, str) or not _TAG.match(tag):
        return f"invalid tag {tag!r}: use only letters, digits, '_' and '-'"
    return None


def feature_name_error(name: str) -> str | None:
    """Why ``name`` is not a valid feature name."""
    if not isinstance(name, str) or not _FEATURE.match(name):
        return f"invalid feature name {name!r}: use only letters, digits, '_', '.' and '-'"
    return None


def feature_value_error(value: str) -> str | None:
    """Why ``value`` cannot be a feature value (printable ASCII, no newline)."""
    if not isinstance(value, str) or not all(0x20 <= ord(c) <= 0x7E for c in value):
        return "feature value must be printable ASCII (0x20-0x7e) without newlines"
    return None


def label_name_error(name: str) -> str | None:
    """Why ``name`` cannot name a new label."""
    if not isinstance(name, str) or not _LABEL.match(name):
        return f"invalid label name {name!r}: use only letters, digits, '_', '.' and '-'"
    if name.isdigit():
        return "label name cannot be all digits"
    return None


def article(word: str) -> str:
    """``word`` with its indefinite article, as it is spoken: an AppVM, an AdminVM, a TemplateVM, a DispVM."""
    return f"{'an' if word[:1].upper() in 'AEIOU' else 'a'} {word}"
