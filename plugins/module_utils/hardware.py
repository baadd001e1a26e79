# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Does the layout fit the machine? Host facts, a hardware profile and a layout, checked (hardware_check).

Facts are read the way a real dom0 offers them: memory, CPUs and
virtualization capabilities from ``xl info`` (run as a command; in dom0 it
needs root), the host's PCI devices from dom0's device API
(``admin.vm.device.pci.Available``), the pool's size from ``admin.pool.Info``.
Each check is one row: what is expected, what was found, ``ok``, ``warn`` or
``fail``.  Nothing is changed.  No Ansible imports.
"""

from __future__ import annotations

import shlex
import subprocess

from ansible_collections.corral.qubes.plugins.module_utils import engine, formats, wire

DEFAULT_MEMORY_MIB = 400
"""qubesd's default ``memory`` of a qube that sets none."""
DEFAULT_PRIVATE = 2 * 1024 ** 3
DEFAULT_ROOT = 20 * 1024 ** 3
"""Default volume sizes of a new qube (private 2 GiB; a StandaloneVM's own root 20 GiB)."""
THIN_DRIVERS = ("lvm_thin", "zfs", "btrfs", "reflink")
"""Pool drivers that allocate on write, so volume sizes may add up to more than the pool (over-commit)."""
PROFILE_KEYS = ("name", "memory_mib", "cores", "threads", "vtx", "vtd", "disk_bytes", "pci")


def gib(size: int) -> str:
    """A size in GiB with one decimal."""
    return f"{size / 1024 ** 3:.1f} GiB"


def parse_xl_info(text: str) -> dict[str, str]:
    """``xl info`` output (``key : value`` lines) as a dict."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


class XlInfo:
    """``<command> info``, started at once and read when its fields are needed (RuntimeError with the reason when
    it cannot run), so that the check reads qubesd while xl runs."""

    def __init__(self, command: str, timeout: float = 30):
        self.argv = shlex.split(command) + ["info"]
        self.timeout = timeout
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,  # noqa: S603
                                         stderr=subprocess.PIPE, text=True)
        except OSError as exc:
            raise RuntimeError(f"cannot run {' '.join(self.argv)}: {exc}") from exc

    def fields(self) -> dict[str, str]:
        """What it printed, as a dict, once it has exited."""
        try:
            stdout, stderr = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            self.stop()
            raise RuntimeError(f"cannot run {' '.join(self.argv)}: {exc}") from exc
        if self.proc.returncode != 0:
            raise RuntimeError(f"{' '.join(self.argv)} failed (exit status {self.proc.returncode}): {stderr.strip()}")
        info = parse_xl_info(stdout)
        missing = [key for key in ("total_memory", "nr_cpus", "threads_per_core", "virt_caps") if key not in info]
        if missing:
            raise RuntimeError(f"{' '.join(self.argv)} printed no {', '.join(missing)}")
        return info

    def stop(self) -> None:
        """Ends it when its fields are not wanted any more."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def check_profile(profile: dict) -> dict:
    """The profile's shape (a PlanError naming the key)."""
    if not isinstance(profile, dict):
        raise engine.PlanError("profile", "expected a dict (name, memory_mib, cores, threads, vtx, vtd, disk_bytes, pci)")
    unknown = sorted(set(profile) - set(PROFILE_KEYS))
    if unknown:
        raise engine.PlanError(f"profile.{unknown[0]}", f"unknown key; a profile has {', '.join(PROFILE_KEYS)}")
    for key in ("memory_mib", "cores", "threads"):
        if not isinstance(profile.get(key), int) or isinstance(profile.get(key), bool) or profile[key] <= 0:
            raise engine.PlanError(f"profile.{key}", f"expected a positive number, not {profile.get(key)!r}")
    pci = profile.get("pci") or {}
    if not isinstance(pci, dict):
        raise engine.PlanError("profile.pci", "expected a mapping of PCI ports (00_19.0) to their description")
    return profile


class Checks:
    """The rows of the report."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, check: str, expected, found, result: str, note: str = "") -> None:
        self.rows.append({"check": check, "expected": str(expected), "found": str(found), "result": result,
                          "note": note})

    @property
    def failed(self) -> list[dict]:
        return [row for row in self.rows if row["result"] == "fail"]

    @property
    def warnings(self) -> list[dict]:
        return [row for row in self.rows if row["result"] == "warn"]

    def table(self) -> str:
        """A plain text table, one line per check."""
        header = {"check": "CHECK", "expected": "EXPECTED", "found": "FOUND", "result": "RESULT", "note": "NOTE"}
        rows = [header] + self.rows
        widths = {key: max(len(row[key]) for row in rows) for key in ("check", "expected", "found", "result")}
        lines = ["  ".join(row[key].ljust(widths[key]) for key in ("check", "expected", "found", "result"))
                 + ("  " + row["note"] if row["note"] else "") for row in rows]
        return "\n".join(line.rstrip() for line in lines)


def _qube_needs(reader: engine.Reader, name: str, spec: dict) -> dict:
    """Memory, autostart, HVM, PCI devices and volume sizes a layout qube asks for (current values fill gaps)."""
    props = spec.get("properties") or {}
    current = reader.props(name) if name in reader.vms else {}

    def value(prop, default):
        if prop in props:
            return props[prop]
        if prop in current:
            return current[prop].value
        return default
    pci = [d for d in spec.get("devices") or [] if isinstance(d, dict) and d.get("class") == "pci"]
    autostart = str(value("autostart", False)).lower() in ("true", "1", "yes", "on")
    virt_mode = str(value("virt_mode", "hvm" if pci else "pvh")).lower()
    memory = int(value("memory", DEFAULT_MEMORY_MIB) or DEFAULT_MEMORY_MIB)
    volumes = {}
    for volume, size in (spec.get("volumes") or {}).items():
        volumes[volume] = formats.parse_size(size)
    if name not in reader.vms:
        volumes.setdefault("private", DEFAULT_PRIVATE)
        if spec.get("class") == "StandaloneVM":
            volumes.setdefault("root", DEFAULT_ROOT)
    return {"autostart": autostart, "memory": memory, "hvm": virt_mode == "hvm" or bool(pci), "pci": pci,
            "volumes": volumes}


def run_check(reader: engine.Reader, params: dict) -> dict:
    """Facts, checks and the report; ``failed`` when a check fails."""
    try:
        profile = check_profile(params["profile"])
        layout = params.get("layout") or {}
        if not isinstance(layout, dict):
            raise engine.PlanError("layout", "expected the layout's qubes (name -> options), as qubes_layout")
    except engine.PlanError as exc:
        return {"failed": True, "changed": False, "msg": str(exc), "field": exc.field}
    try:
        xl_info = XlInfo(params.get("xl_command") or "xl")  # runs while qubesd is read
    except RuntimeError as exc:
        return {"failed": True, "changed": False, "msg": f"xl_command: {exc}", "field": "xl_command"}
    try:
        host_pci = {head.partition(":")[0]: fields for head, fields in reader.client.device_available("dom0", "pci")}
        pool_name = params.get("pool") or reader.props(None)["default_pool"].value
        pool = reader.client.pool_info(pool_name)
        needs = {name: _qube_needs(reader, name, spec or {}) for name, spec in layout.items()}
    except (wire.QubesException, ValueError) as exc:
        xl_info.stop()
        return {"failed": True, "changed": False, "msg": f"reading dom0 failed: {type(exc).__name__}: {exc}"}
    try:
        xl = xl_info.fields()
    except RuntimeError as exc:
        return {"failed": True, "changed": False, "msg": f"xl_command: {exc}", "field": "xl_command"}

    total = int(xl["total_memory"])
    threads = int(xl["nr_cpus"])
    cores = threads // max(int(xl.get("threads_per_core", "1")), 1)
    caps = xl["virt_caps"].split()
    facts = {"total_memory_mib": total, "free_memory_mib": int(xl.get("free_memory", "0")), "cores": cores,
             "threads": threads, "virt_caps": caps, "xen_version": xl.get("xen_version", ""),
             "pci": {port: fields.get("description") or f"{fields.get('vendor', 'unknown')} "
                     f"{fields.get('product', 'unknown')}" for port, fields in sorted(host_pci.items())},
             "pool": {"name": pool_name, "driver": pool.get("driver", ""), "size": int(pool.get("size") or 0),
                      "usage": int(pool.get("usage") or 0)}}
    checks = Checks()
    name = profile.get("name", "profile")
    # -- the machine against its profile
    wanted_mib = profile["memory_mib"]
    checks.add("host memory", f"{wanted_mib} MiB", f"{total} MiB",
               "ok" if total >= wanted_mib * 0.95 else "fail", f"{name}; xl info total_memory")
    checks.add("CPU cores / threads", f"{profile['cores']} / {profile['threads']}", f"{cores} / {threads}",
               "ok" if (cores, threads) == (profile["cores"], profile["threads"]) else "warn")
    if profile.get("vtx"):
        checks.add("VT-x (hvm)", "hvm in virt_caps", " ".join(caps), "ok" if "hvm" in caps else "fail")
    if profile.get("vtd"):
        checks.add("VT-d (hvm_directio)", "hvm_directio in virt_caps", " ".join(caps),
                   "ok" if "hvm_directio" in caps else "fail")
    for port, description in sorted((profile.get("pci") or {}).items()):
        found = host_pci.get(port)
        text = facts["pci"].get(port, "absent")
        result = "ok" if found is not None else "fail"
        checks.add(f"PCI {port}", description, text if found is not None else "absent", result)
    if profile.get("disk_bytes") and facts["pool"]["size"]:
        checks.add("pool size", f"<= disk {gib(profile['disk_bytes'])}",
                   gib(facts["pool"]["size"]), "ok" if facts["pool"]["size"] <= profile["disk_bytes"] * 1.1
                   else "warn", f"pool {pool_name} ({facts['pool']['driver']})")
    # -- the layout against the machine
    dom0_share = int(params.get("dom0_memory_mib") or 0)
    autostart = {qube: need["memory"] for qube, need in needs.items() if need["autostart"]}
    memory = sum(autostart.values()) + dom0_share
    checks.add("memory of autostart qubes + dom0", f"<= {total} MiB", f"{memory} MiB",
               "ok" if memory <= total else "fail",
               f"dom0 {dom0_share} + " + ", ".join(f"{qube} {mib}" for qube, mib in sorted(autostart.items())))
    size = sum(sum(need["volumes"].values()) for need in needs.values())
    pool_size, pool_free = facts["pool"]["size"], facts["pool"]["size"] - facts["pool"]["usage"]
    if pool_size:
        thin = facts["pool"]["driver"] in THIN_DRIVERS
        result = "ok" if size <= pool_free else ("warn" if thin or size <= pool_size else "fail")
        note = "thin pool: over-commit" if result == "warn" and thin else (
            "more than the free space" if result == "warn" else "")
        checks.add("volume sizes of the layout", f"<= {gib(pool_free)} free of "
                   f"{gib(pool_size)}", gib(size), result, note)
    hvm = sorted(qube for qube, need in needs.items() if need["hvm"])
    if hvm:
        checks.add("HVM qubes need VT-x", "hvm in virt_caps", "yes" if "hvm" in caps else "no",
                   "ok" if "hvm" in caps else "fail", ", ".join(hvm))
    passthrough = sorted(qube for qube, need in needs.items() if need["pci"])
    if passthrough:
        checks.add("PCI passthrough needs VT-d", "hvm_directio in virt_caps",
                   "yes" if "hvm_directio" in caps else "no", "ok" if "hvm_directio" in caps else "fail",
                   ", ".join(passthrough))
    owners: dict = {}
    for qube, need in sorted(needs.items()):
        for device in need["pci"]:
            text = str(device.get("device", ""))
            backend, _sep, port = text.partition(":")
            present = backend == "dom0" and port in host_pci
            owners.setdefault(text, []).append(qube)
            checks.add(f"device {text} of {qube}", "present on the host", "present" if present else "absent",
                       "ok" if present else "fail")
    shared = {device: qubes for device, qubes in owners.items() if len(qubes) > 1
              and sum(1 for qube in qubes if needs[qube]["autostart"]) > 1}
    for device, qubes in sorted(shared.items()):
        checks.add(f"device {device}", "one autostart qube", ", ".join(qubes), "fail")
    report = checks.table()
    result = {"changed": False, "facts": facts, "checks": checks.rows, "report": report,
              "report_lines": report.splitlines()}
    if checks.warnings:
        result["warnings"] = [f"{row['check']}: {row['found']} ({row['expected']}) {row['note']}".rstrip()
                              for row in checks.warnings]
    if checks.failed:
        result["failed"] = True
        result["msg"] = ("the layout does not fit the machine: " + "; ".join(
            f"{row['check']}: found {row['found']}, expected {row['expected']}" for row in checks.failed)
            + "\n" + report)
    return result
