# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The entries of the bsd role (FreeBSD HVMs installed by bsdinstall): defaults and checks, before anything changes.

An error names the qube and the key, and says the form expected; it never
repeats the root password hash.  No Ansible imports.
"""

from __future__ import annotations

import re

from ansible_collections.corral.qubes.plugins.module_utils import guest

DEFAULTS = {
    "label": "purple", "memory": 1024, "vcpus": 2, "root_gib": 20, "hostname": None, "interface": "xn0",
    "partitions": "DEFAULT", "distributions": ["kernel.txz", "base.txz"], "sshd": False, "ssh_authorized_keys": [],
    "setup_commands": [], "network": {}, "post_install": {}, "reinstall": False, "timeout": 3600,
}
REQUIRED = ("iso", "root_password_hash")
KEYS = tuple(sorted(set(DEFAULTS) | set(REQUIRED) | {"netvm"}))
MIN_ROOT_GIB = 4
"""The smallest root volume the role takes: the base and kernel sets, the default layout's swap, room to grow."""
MIN_MEMORY = 512
SHA512_CRYPT = re.compile(r"^\$6\$(rounds=\d{4,9}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}$")
HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")
INTERFACE = re.compile(r"^[a-z]+[0-9]+$")
DISTRIBUTION = re.compile(r"^[a-z0-9][a-z0-9-]*\.txz$")
SSH_KEY = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) "
                     r"[A-Za-z0-9+/=]+( [^'\n]*)?$")
PARTITIONS = re.compile(r"^[A-Za-z0-9{}_ ,./+-]+$")


EntryError = guest.EntryError
"""A bad entry; the message names ``name.key``."""


def entry(name: str, raw: dict) -> dict:
    """The entry with the role's defaults (the host name defaults to the qube's name)."""
    merged = {**DEFAULTS, **raw}
    if not merged.get("hostname"):
        merged["hostname"] = name
    return merged


def _strings(name: str, key: str, value, pattern, what: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and pattern.match(v) for v in value):
        raise EntryError(f"{name}.{key}: expected a list of {what}")


def check(name: str, raw) -> None:
    """Every key of one entry, or :class:`EntryError`."""
    guest.check_shape(name, raw, KEYS, REQUIRED)
    b = entry(name, raw)
    guest.check_iso(name, b["iso"])
    if not isinstance(b["root_password_hash"], str) or not SHA512_CRYPT.match(b["root_password_hash"]):
        raise EntryError(f"{name}.root_password_hash: expected a SHA-512 crypt hash ($6$salt$ and 86 characters, "
                         "as `mkpasswd -m sha-512` or `openssl passwd -6` prints), not a password")
    guest.check_int(name, "memory", b["memory"], MIN_MEMORY, "MiB")
    guest.check_int(name, "vcpus", b["vcpus"], 1, "a number of virtual CPUs")
    guest.check_int(name, "root_gib", b["root_gib"], MIN_ROOT_GIB, "GiB for the root volume")
    guest.check_int(name, "timeout", b["timeout"], 1, "seconds the install may take")
    if not isinstance(b["hostname"], str) or len(b["hostname"]) > 253 or not HOSTNAME.match(b["hostname"]):
        raise EntryError(f"{name}.hostname: expected a host name (labels of letters, digits and '-', dot-separated)")
    if not isinstance(b["interface"], str) or not INTERFACE.match(b["interface"]):
        raise EntryError(f"{name}.interface: expected a FreeBSD interface name such as xn0 (Xen's) or em0")
    if not isinstance(b["partitions"], str) or not PARTITIONS.match(b["partitions"]):
        raise EntryError(f"{name}.partitions: expected DEFAULT or a bsdinstall scriptedpart layout such as "
                         "'ada0 GPT {{ 512K freebsd-boot, auto freebsd-ufs / }}'")
    _strings(name, "distributions", b["distributions"], DISTRIBUTION, "distribution sets such as base.txz")
    if not {"base.txz", "kernel.txz"} <= set(b["distributions"]):
        raise EntryError(f"{name}.distributions: expected base.txz and kernel.txz among them (a system boots from both)")
    _strings(name, "ssh_authorized_keys", b["ssh_authorized_keys"], SSH_KEY, "OpenSSH public keys (type, key, comment)")
    commands = b["setup_commands"]
    if not isinstance(commands, list) or not all(isinstance(c, str) and c and "\n" not in c for c in commands):
        raise EntryError(f"{name}.setup_commands: expected a list of shell command lines (one line each)")
    guest.check_network(name, b["network"])
    guest.check_post_install(name, b["post_install"])
    for key in ("reinstall", "sshd"):
        if not isinstance(b[key], bool):
            raise EntryError(f"{name}.{key}: expected true or false")
    if b["ssh_authorized_keys"] and not b["sshd"]:
        raise EntryError(f"{name}.ssh_authorized_keys: given without sshd: true (nothing would read them)")


def network(b: dict, properties: dict) -> dict:
    """The guest's static settings (:func:`guest.static_network`) with the entry's ``network`` overrides."""
    return guest.static_network(b.get("network") or {}, properties)
