# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Install an operating system in an HVM from install media, exactly once (the os_install module).

``status`` reads: the release, the qube (an HVM StandaloneVM or TemplateVM
that boots from its disks, or not there yet) and the install record, a
feature holding a salted digest of the answer file (never the file).  A
recorded digest equal to the answer file's means installed: nothing more is
read or done.  A different one is reported and left alone unless
``reinstall``.

``installed`` does what ``qvm-start --cdrom`` does for each medium (R4.3:
a ``required`` block assignment with ``devtype=cdrom`` and ``read-only=True``,
removed right after the start; R4.2: a persistent attach with persistence
turned off after the start), with the setup features set before (Windows 7
needs ``video-model=cirrus``), then waits until the guest powers itself off
(the installer's last step), removes the setup features and records the
digest.  An installer that reboots on the way (Windows 7 setup, twice)
powers the qube off each time, since Qubes ends a domain that reboots: with
``power_offs`` N the qube is started again from its disk after each of the
first N-1 power-offs, as the Qubes documentation says to do by hand.  Every input is checked before the first change.  No Ansible imports.
"""

from __future__ import annotations

import hashlib
import time

from ansible_collections.corral.qubes.plugins.module_utils import devices, engine, wire

CLASSES = ("StandaloneVM", "TemplateVM")
CDROM_OPTIONS = {"devtype": "cdrom", "read-only": "True"}
SALT = "corral.qubes.os_install"
ROUNDS = 100000


ARGUMENT_SPEC = dict(  # the module's, also in tasks.ARGUMENT_SPECS
    name={"type": "str", "required": True},
    answer_file={"type": "str", "required": True, "no_log": True},
    state={"type": "str", "choices": ["status", "installed"], "default": "installed"},
    media={"type": "list", "elements": "str", "default": []},
    record_feature={"type": "str", "default": "corral-os-install", "no_log": False},
    reinstall={"type": "bool", "default": False},
    setup_features={"type": "dict", "default": {}},
    timeout={"type": "int", "default": 7200},
    power_offs={"type": "int", "default": 1},
    poll={"type": "float", "default": 10},
    min_root_size={"type": "int", "default": 0},
    tools={"type": "bool", "default": False},
    qubesd_socket={"type": "path"},
)


class InstallError(ValueError):
    """An input or a state that stops the task, with the field it is about."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def digest(answer_file: str, qube: str) -> str:
    """The record of an answer file: PBKDF2-SHA256 salted with the qube's name (the file holds secrets)."""
    value = hashlib.pbkdf2_hmac("sha256", answer_file.encode("utf-8"), f"{SALT}:{qube}".encode("utf-8"), ROUNDS)
    return f"pbkdf2-sha256:{ROUNDS}:{value.hex()}"


def _medium(field: str, text) -> tuple[str, str]:
    """A medium's ``QUBE:PORT`` (the reading devices.split_device makes), or an InstallError naming ``field``."""
    try:
        return devices.split_device(field, text, "media:loop0")
    except engine.PlanError as error:
        raise InstallError(field, f"not a block device as QUBE:PORT: {error.message}") from None


class Installer:
    """One task: read, decide, and (state installed) install."""

    def __init__(self, client, params: dict, check_mode: bool):
        self.client = client
        self.reader = engine.Reader(client)
        self.params = params
        self.check_mode = check_mode
        self.name = params["name"]
        self.actions: list[str] = []
        self.warnings: list[str] = []

    # -- reading --------------------------------------------------------------------------------

    def status(self) -> dict:
        """What is there and what the answer file asks (reads only)."""
        params = self.params
        release = self.reader.release
        if params.get("tools") and release != "4.2":
            raise InstallError("tools", f"Qubes Windows Tools are not available for this guest on Qubes R{release}: "
                                        "R4.3's tools (QWT 4.2) need APIs Windows 7 lacks, and the older signed "
                                        "drivers were withdrawn (QSB-091); install without tools (no qrexec, no gui "
                                        "feature) or use Qubes R4.2 with QWT 4.1.69")
        wanted = digest(params["answer_file"], self.name)
        entry = self.reader.vms.get(self.name)
        result = {"release": release, "exists": entry is not None, "recorded": None, "installed": False,
                  "answer_changed": False, "needs_install": True, "power": None}
        if entry is None:
            return result
        if entry.klass not in CLASSES:
            raise InstallError("name", f"{self.name} is a {entry.klass}: an operating system is installed in a "
                                       f"StandaloneVM or a TemplateVM")
        result["power"] = engine.power_word(entry.state)
        recorded = self.client.feature_get(self.name, params["record_feature"])
        result["recorded"] = recorded
        if recorded == wanted:
            result.update(installed=True, needs_install=False)
            return result
        if recorded:
            result.update(installed=True, answer_changed=True, needs_install=bool(params.get("reinstall")))
            if not params.get("reinstall"):
                self.warnings.append(
                    f"{self.name}: the answer file (or install script) changed since the system was installed (feature "
                    f"{params['record_feature']} records another digest); not reinstalled — set reinstall: true "
                    "to install again, which wipes the qube's root disk")
            return result
        props = self.reader.props(self.name)
        virt_mode = props["virt_mode"].value if "virt_mode" in props else ""
        kernel = props["kernel"].value if "kernel" in props else ""
        if virt_mode != "hvm":
            raise InstallError("name", f"{self.name} exists with virt_mode {virt_mode or 'unset'} and no install "
                                       "record: an operating system is installed only in an HVM; set virt_mode hvm "
                                       "(and an empty kernel) on it yourself, or choose another name")
        if kernel and params["state"] == "installed":
            raise InstallError("name", f"{self.name} boots the dom0 kernel {kernel!r}: set kernel to '' so it "
                                       "boots from its CD-ROM and disk")
        return result

    # -- installing -------------------------------------------------------------------------------

    def check_install(self, state: dict) -> list[tuple[str, str]]:
        """Everything an install needs, checked before it changes anything."""
        params = self.params
        if not state["exists"]:
            raise InstallError("name", f"{self.name} does not exist: create it (an HVM) before installing")
        if state["power"] != "halted":
            raise InstallError("name", f"{self.name} is {state['power']}: an install starts it from its media, so "
                                       "shut it down first")
        media = [_medium(f"media[{i}]", text) for i, text in enumerate(params.get("media") or [])]
        if not media:
            raise InstallError("media", "an install needs its media as QUBE:PORT block devices")
        for i, (backend, port) in enumerate(media):
            if backend not in self.reader.vms:
                raise InstallError(f"media[{i}]", f"no qube {backend} holds the medium")
            ports = [head.partition(":")[0] for head, _fields in self.client.device_available(backend, "block")]
            if port not in ports:
                raise InstallError(f"media[{i}]", f"{backend} exposes no block device {port} "
                                                  f"(it exposes: {', '.join(ports) or 'none'})")
        if isinstance(params.get("power_offs"), bool) or not isinstance(params.get("power_offs"), int) \
                or params["power_offs"] < 1:
            raise InstallError("power_offs", "expected the number of times the installer powers the qube off, "
                                             "its final shutdown included (an integer of at least 1)")
        minimum = params.get("min_root_size") or 0
        root = self.reader.volumes(self.name, ["root"]).get("root")
        size = int(root.get("size", 0)) if root else 0
        if size < minimum:
            raise InstallError("min_root_size", f"the root volume of {self.name} is {size} bytes; the system needs "
                                                f"at least {minimum}")
        return media

    def install(self, media: list[tuple[str, str]]) -> float:
        """Attach, start, detach, wait for the guest's power-off; the seconds waited."""
        params = self.params
        r42 = self.reader.release == "4.2"
        for feature, value in sorted((params.get("setup_features") or {}).items()):
            self.client.feature_set(self.name, feature, value)
            self.actions.append(f"set feature {feature}={value} for the install")
        for backend, port in media:
            if r42:
                self.client.device_attach(self.name, "block", backend, port, CDROM_OPTIONS, persistent=True)
            else:
                self.client.device_assign(self.name, "block", backend, port, "*", "required", CDROM_OPTIONS)
            self.actions.append(f"attach {backend}:{port} to {self.name} as a read-only CD-ROM")
        try:
            self.client.start(self.name)
        except wire.QubesException:
            self._detach(media, r42)
            raise
        self.actions.append(f"start {self.name} from its media")
        self._detach(media, r42)
        started = time.monotonic()
        total = params.get("power_offs") or 1
        for count in range(1, total + 1):
            self._wait_halted(started, count, total)
            waited = round(time.monotonic() - started, 1)
            if count < total:
                self.actions.append(f"{self.name} powered off after {waited} s (the installer's reboot {count} of "
                                    f"{total - 1}): start it again from its disk")
                self.client.start(self.name)
        self.actions.append(f"{self.name} powered itself off after {waited} s (install finished)")
        current = self.client.feature_list(self.name)
        for feature in sorted(params.get("setup_features") or {}):
            if feature in current:
                self.client.feature_remove(self.name, feature)
                self.actions.append(f"remove the install-time feature {feature}")
        self.client.feature_set(self.name, params["record_feature"], digest(params["answer_file"], self.name))
        self.actions.append(f"record the install in feature {params['record_feature']}")
        return waited

    def _wait_halted(self, started: float, count: int, total: int) -> None:
        """Poll until the qube is halted, within the install's whole timeout."""
        timeout = float(self.params["timeout"])
        while True:
            state = self.client.list_vms(self.name).get(self.name)
            if state is not None and engine.power_word(state.state) == "halted":
                return
            waited = time.monotonic() - started
            if waited >= timeout:
                seen = f" (after {count - 1} of the {total} power-offs expected)" if count > 1 else ""
                raise InstallError("timeout", f"{self.name} did not power off within {timeout:g} s{seen}: its "
                                              "installer did not finish. Look at the qube's window (no bootable "
                                              "device: the system medium is not bootable; setup asking: the answer "
                                              "file was not taken; a desktop: the installer powers the qube off "
                                              "fewer times than expected). It keeps running; nothing was recorded, "
                                              "so the next run installs again once it is shut down")
            time.sleep(min(float(self.params["poll"]), max(0.05, timeout - waited)))

    def _detach(self, media, r42: bool) -> None:
        """The media are for the first boot only (qvm-start --cdrom's behaviour)."""
        for backend, port in media:
            try:
                if r42:
                    self.client.device_set_persistent(self.name, "block", backend, port, False)
                else:
                    self.client.device_unassign(self.name, "block", backend, port, "*")
            except wire.QubesException as exc:
                self.warnings.append(f"{backend}:{port} could not be taken off {self.name}'s assignments: {exc}")


def run(client, params: dict, check_mode: bool) -> dict:
    """The task's result as Ansible reports it."""
    task = Installer(client, params, check_mode)
    try:
        state = task.status()
        changed = False
        waited = None
        if params["state"] == "installed" and state["needs_install"]:
            media = task.check_install(state)
            changed = True
            if check_mode:
                task.actions.append(f"would install {task.name} from {', '.join(params['media'])}")
            else:
                waited = task.install(media)
                state.update(installed=True, answer_changed=False, needs_install=False)
    except InstallError as exc:
        return {"failed": True, "changed": bool(task.actions), "msg": str(exc), "field": exc.field,
                "actions": task.actions, "warnings": task.warnings, "api_calls": client.qubesd_calls}
    except wire.QubesException as exc:
        return {"failed": True, "changed": bool(task.actions), "msg": f"{type(exc).__name__}: {exc}",
                "actions": task.actions, "warnings": task.warnings, "api_calls": client.qubesd_calls}
    state.pop("recorded", None)
    return {"changed": changed, **state, "waited": waited, "actions": task.actions, "warnings": task.warnings,
            "api_calls": client.qubesd_calls}
