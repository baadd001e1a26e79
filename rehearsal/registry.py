# SPDX-License-Identifier: GPL-3.0-or-later
"""The method table of the rehearsal dom0.

Every method is registered with the rules qubesd applies before its body
runs: whether the destination must be dom0, whether an argument and a
payload are allowed, whether it writes state.  Breaking one of those rules
gets an empty reply, like qubesd's ProtocolError.  Handlers live in
:mod:`rehearsal.api` and :mod:`rehearsal.devices`; :func:`find_method` loads them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from ansible_collections.corral.qubes.plugins.module_utils import wire

from rehearsal.dom0 import CREATABLE, Dom0
from rehearsal.model import Qube

DEVICE_CLASSES = ("pci", "block", "usb", "mic")
EVENTS_FILTERED = ("admin-permission:", "device-get:", "device-list:", "device-list-attached:")


class ProtocolError(Exception):
    """A request qubesd refuses without an answer (empty reply)."""


class PermissionDenied(Exception):
    """A call the permission checks refuse (empty reply)."""


@dataclasses.dataclass
class Call:
    """One request, resolved."""

    dom0: Dom0
    request: wire.Request
    src: Qube
    dest: Qube

    @property
    def arg(self) -> str:
        """The method argument."""
        return self.request.arg

    @property
    def payload(self) -> bytes:
        """The request payload."""
        return self.request.payload

    def enforce(self, condition: bool) -> None:
        """qubesd's enforce(): a failed condition is a protocol error (empty reply)."""
        if not condition:
            raise ProtocolError("enforce failed")


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered Admin API method."""

    name: str
    func: Callable
    scope: str = "local"
    """global: dest must be dom0; local: any qube; vm: any qube but dom0."""
    write: bool = False
    payload: bool = False
    arg: str = "none"
    """none, required or optional."""
    releases: tuple = ("4.2", "4.3")
    stream: bool = False


METHODS: dict[str, Method] = {}


def method(name: str, **options):
    """Register a handler."""
    def register(func):
        METHODS[name] = Method(name=name, func=func, **options)
        return func
    return register


def find_method(dom0: Dom0, name: str) -> Method | None:
    """The method for a name in this release (Create.<Class> and device.<class>.* included)."""
    load_handlers()
    found = METHODS.get(name)
    if found is None:
        for prefix in ("admin.vm.Create.", "admin.vm.CreateInPool."):
            if name.startswith(prefix) and name[len(prefix):] in CREATABLE:
                found = METHODS[prefix + "*"]
        match = re.fullmatch(r"admin\.vm\.device\.([a-z]+)\.([A-Za-z.]+)", name)
        if match and match.group(1) in DEVICE_CLASSES:
            found = METHODS.get(f"admin.vm.device.*.{match.group(2)}")
    if found is None or dom0.release not in found.releases:
        return None
    return found


def check_request(call: Call, meth: Method) -> None:
    """The checks qubesd makes before a handler's body."""
    if not meth.payload and call.payload:
        raise ProtocolError("unexpected payload")
    if meth.arg == "none" and call.arg:
        raise ProtocolError("unexpected argument")
    if meth.arg == "required" and not call.arg:
        raise ProtocolError("expected an argument")
    if meth.scope == "global" and call.dest.name != "dom0":
        raise ProtocolError("expected destination to be dom0")
    if meth.scope == "vm" and call.dest.klass == "AdminVM":
        raise ProtocolError("expected destination to not be dom0")


def admin_policy_allows(dom0: Dom0, source: Qube, service: str, arg: str, target: str) -> bool:
    """The admin qrexec policy, as qubesd asks it to filter lists for calls from qubes."""
    return dom0.admin_policy(source.name, service, arg, target)


def load_handlers() -> None:
    """Import the handler modules (they register themselves)."""
    # pylint: disable=import-outside-toplevel,unused-import,cyclic-import
    from rehearsal import api, devices  # noqa: F401
