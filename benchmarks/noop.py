# SPDX-License-Identifier: GPL-3.0-or-later
"""The cost of a re-run: site.yml and layouts of many qubes, no-op against an empty play.

Each case runs on a fresh rehearsal dom0 (``python -m rehearsal serve``) and
prints medians of --runs runs, measured in the same run of this script:

* the reference layout (inventories/t420s, site.yml): ``--check --diff`` on the
  fresh dom0, the first converge, then the no-op against an empty play (one
  debug task) on the same inventory: wall time, ratio, Admin API calls (per
  qube), mutating calls, qube starts, qrexec calls into qubes, peak memory;
  and the empty play once more without the project's callbacks (Ansible as it
  comes: the preload callback makes the empty play's start faster too);
* synthetic layouts (--sizes, default 15, 50 and 100 qubes, each with
  properties, features, services, tags, and a firewall whitelist and a device
  on some) through the qubes role: the same figures, and the growth from the
  smallest to the largest layout in ms per qube;
* the qrexec connection plugin: commands run inside a running qube (a real root
  filesystem of the rehearsal, root and the cached base root needed), the
  qrexec calls per command and the round trip per command.

Nothing is asserted: these are measurements (``make bench`` runs it with the
development venv and again with the R4.3 dom0's stack, ``.venv-r43``: Python
3.13 with ansible-core 2.18, what a Qubes R4.3 user runs).

    python -m benchmarks.noop [--runs 5] [--sizes 15,50,100] [--no-connection]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import yaml
from ansible import release as ansible_release

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod
from benchmarks.admin_api import ROOT, _start
from rehearsal.policy_admin import POLICY_DIR, RUNTIME_POLICY_DIR

BIN = os.path.dirname(sys.executable)
REHEARSAL_BIN = os.path.join(ROOT, "rehearsal", "bin")
LABELS = ("red", "orange", "yellow", "green", "gray", "blue", "purple", "black")
STARTS = ("admin.vm.Start", "admin.vm.Unpause", "admin.vm.Resume")


class Dom0:
    """A fresh rehearsal dom0 serving in ``directory``, with its Admin API and qrexec call logs."""

    def __init__(self, directory: str, extra=()):
        self.directory = directory
        self.log = os.path.join(directory, "calls.jsonl")
        self.qrexec_log = os.path.join(directory, "qrexec.jsonl")
        self.daemon_dir = os.path.join(directory, "qubes")
        self.proc, self.socket, _startup = _start(directory, ["--call-log", self.log, "--qrexec-log", self.qrexec_log,
                                                              "--qrexec-daemon-dir", self.daemon_dir, *extra])
        self.client = client_mod.AdminClient(client_mod.SocketTransport(self.socket))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()

    def env(self) -> dict:
        """What ansible-playbook needs to reach this dom0 (as ``python -m rehearsal run`` gives it)."""
        return dict(os.environ, QUBESD_SOCKET=self.socket, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
                    QREXEC_CLIENT=os.path.join(REHEARSAL_BIN, "qrexec-client"),
                    QREXEC_CLIENT_VM=os.path.join(REHEARSAL_BIN, "qrexec-client-vm"),
                    REHEARSAL_QREXEC_SOCKET=self.socket.removesuffix(".sock") + ".qrexec.sock",
                    REHEARSAL_QREXEC_DAEMON_DIR=self.daemon_dir, CORRAL_QREXEC_DAEMON_DIR=self.daemon_dir,
                    CORRAL_XL=os.path.join(REHEARSAL_BIN, "xl"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
                    CORRAL_POLICY_DIR=os.path.join(self.directory, "state", POLICY_DIR),
                    CORRAL_RUNTIME_POLICY_DIR=os.path.join(self.directory, "state", RUNTIME_POLICY_DIR),
                    ANSIBLE_LOCAL_TEMP=os.path.join(self.directory, "ansible-tmp"), ANSIBLE_NOCOLOR="1",
                    ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
                    PATH=os.pathsep.join([os.path.join(REHEARSAL_BIN, "dom0"), BIN, os.environ.get("PATH", "")]))

    def marks(self) -> tuple[int, int]:
        return _lines(self.log), _lines(self.qrexec_log)

    def since(self, marks: tuple[int, int]) -> dict:
        """Admin API calls, mutating ones, starts and qrexec calls into qubes since ``marks``."""
        calls = _records(self.log)[marks[0]:]
        records = _records(self.qrexec_log)[marks[1]:]
        qrexec = [call for call in records if call.get("target") not in ("dom0", "")]
        policy = [call for call in records if call.get("target") == "dom0" and call.get("service", "").startswith("policy.")]
        return {"calls": len(calls), "writes": sum(1 for call in calls if call.get("mutating")),
                "starts": sum(1 for call in calls if call.get("method") in STARTS), "qrexec": len(qrexec),
                "policy": len(policy)}

    def qubes(self) -> int:
        """Qubes of this dom0, dom0 itself left out."""
        return sum(1 for entry in self.client.list_vms().values() if entry.klass != "AdminVM")


def _lines(path: str) -> int:
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as handle:
        return sum(1 for _line in handle)


def _records(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def playbook(dom0: Dom0, args: list, env: dict | None = None, cwd: str = ROOT) -> tuple[float, int]:
    """One ansible-playbook run from ``cwd`` (by default the repository root): (wall seconds, peak RSS in MiB of
    it and its workers)."""
    started = time.monotonic()
    proc = subprocess.Popen([os.path.join(BIN, "ansible-playbook"), *args], cwd=cwd, env={**dom0.env(), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read()
    proc.stdout.close()
    _pid, status, usage = os.wait4(proc.pid, 0)  # the rusage of this run alone (its largest process)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"ansible-playbook {' '.join(args)} failed:\n{output.decode(errors='replace')[-4000:]}")
    return elapsed, usage.ru_maxrss // 1024


def measured(dom0: Dom0, args: list, env: dict | None = None, cwd: str = ROOT) -> dict:
    """One run (``playbook``'s ``env`` and ``cwd``): its seconds, peak memory and calls."""
    marks = dom0.marks()
    seconds, peak = playbook(dom0, args, env, cwd)
    return {"seconds": seconds, "peak_mib": peak, **dom0.since(marks)}


STOCK = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.default"}
"""The environment of a run without the project's callbacks (preload, run_reads): Ansible as it comes."""


def noop_against_empty(dom0: Dom0, args: list, empty: list, runs: int) -> dict:
    """Medians of ``runs`` no-op runs and ``runs`` empty plays, interleaved; and of ``runs`` empty plays without
    the project's callbacks (which make every run, the empty play's too, start its tasks sooner)."""
    noops, empties, stock = [], [], []
    for _i in range(runs):
        noops.append(measured(dom0, args))
        empties.append(measured(dom0, empty)["seconds"])
        stock.append(playbook(dom0, empty, STOCK)[0])
    figures = {key: statistics.median(run[key] for run in noops) for key in noops[0]}
    figures["empty"] = statistics.median(empties)
    figures["empty_stock"] = statistics.median(stock)
    figures["peak_mib"] = max(run["peak_mib"] for run in noops)
    return figures


LOG_LINE = re.compile(r"\A(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) p=\d+ u=\S+ n=\S+ \S*\| (TASK|PLAY) \[(.*)\]")


def profile(dom0: Dom0, args: list, top: int = 10) -> None:
    """Where one no-op run's time and Admin API calls go, task by task (from ANSIBLE_LOG_PATH's timestamps and
    the call log's), the costliest first."""
    log = os.path.join(dom0.directory, "profile.log")
    if os.path.exists(log):
        os.unlink(log)
    marks = dom0.marks()
    started = time.time()
    seconds, _peak = playbook(dom0, args, {"ANSIBLE_LOG_PATH": log})
    marks_at = []
    with open(log, encoding="utf-8") as handle:
        for line in handle:
            found = LOG_LINE.match(line)
            if found:
                when = time.mktime(time.strptime(found.group(1), "%Y-%m-%d %H:%M:%S")) + int(found.group(2)) / 1000
                marks_at.append((when, f"{found.group(3)} {found.group(4)}"))
    ends = [when for when, _title in marks_at[1:]] + [started + seconds]
    calls = _records(dom0.log)[marks[0]:]
    rows = []
    for (begin, title), end in zip(marks_at, ends):
        count = sum(1 for call in calls if begin <= call["t"] < end)
        rows.append((end - begin, count, title))
    shown_time = sum(row[0] for row in rows)
    print(f"  profile of one no-op run ({seconds:.2f} s; {seconds - shown_time:.2f} s before the first play: "
          f"Ansible's start, inventory and collection loading); the {top} costliest tasks:")
    for spent, count, title in sorted(rows, reverse=True)[:top]:
        print(f"    {spent * 1000:6.0f} ms {count:4d} calls  {title[:100]}")


def empty_play(directory: str) -> str:
    path = os.path.join(directory, "empty.yml")
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump([{"name": "Empty", "hosts": "qubes_admin", "gather_facts": False,
                         "tasks": [{"name": "One task", "ansible.builtin.debug": {"msg": "nothing"}}]}], handle)
    return path


def synthetic_layout(count: int) -> dict:
    """``count`` qubes shaped like a layout's domains: properties, features, services and tags on each, a
    whitelist on every third, a USB assignment on every tenth."""
    layout = {}
    for index in range(count):
        qube = {"label": LABELS[index % len(LABELS)], "template": "fedora-42-xfce",
                "netvm": "" if index % 7 == 0 else "sys-firewall",
                "properties": {"memory": 400 + 100 * (index % 4), "vcpus": 1 + index % 2},
                "features": {"corral-index": str(index)}, "services": {"cups": index % 2 == 0},
                "tags": ["domain", f"group-{index % 3}"]}
        if index % 3 == 1 and qube["netvm"]:
            qube["firewall"] = [{"action": "accept", "dsthost": f"host{index}.example.com", "proto": "tcp",
                                 "dstports": 443}, {"action": "accept", "dsthost": "198.51.100.0/24"},
                                {"action": "drop"}]
        if index % 10 == 5:
            qube["devices"] = [{"class": "usb", "device": f"sys-net:2-{index}", "device_id": "*"}]
        layout[f"dom-{index:03d}"] = qube
    return layout


def synthetic_inventory(directory: str, count: int) -> str:
    """An inventory of dom0 alone with the synthetic layout in its group variables."""
    inventory = os.path.join(directory, f"inventory-{count}")
    os.makedirs(os.path.join(inventory, "group_vars", "qubes_admin"))
    with open(os.path.join(inventory, "hosts.yml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump({"all": {"children": {"qubes_admin": {"hosts": {"dom0": None}}}}}, handle)
    with open(os.path.join(inventory, "group_vars", "qubes_admin", "main.yml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump({"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                        "qubes_layout": synthetic_layout(count)}, handle)
    return inventory


def show_noop(title: str, figures: dict, qubes: int) -> None:
    print(f"  {title}: {figures['seconds']:.2f} s, empty play {figures['empty']:.2f} s, "
          f"ratio {figures['seconds'] / figures['empty']:.2f}x; {figures['calls']:.0f} Admin API calls "
          f"({figures['calls'] / qubes:.1f} per qube, {qubes} qubes in dom0), {figures['writes']:.0f} mutating, "
          f"{figures['starts']:.0f} starts, {figures['qrexec']:.0f} qrexec calls into qubes, "
          f"{figures['policy']:.0f} policy admin calls; "
          f"peak memory {figures['peak_mib']} MiB")
    print(f"    the empty play without the project's callbacks: {figures['empty_stock']:.2f} s "
          f"(the no-op {figures['seconds'] / figures['empty_stock']:.2f}x that)")


def show_run(title: str, figures: dict, qubes: int) -> None:
    print(f"  {title}: {figures['seconds']:.2f} s, {figures['calls']} Admin API calls ({figures['calls'] / qubes:.1f} "
          f"per qube), {figures['writes']} mutating; peak memory {figures['peak_mib']} MiB")


def reference(directory: str, runs: int) -> None:
    """The reference layout through site.yml."""
    dom0 = Dom0(directory)
    try:
        inventory = ["-i", os.path.join(ROOT, "inventories", "t420s")]
        check = measured(dom0, [*inventory, "site.yml", "--check", "--diff"])
        first = measured(dom0, [*inventory, "site.yml"])
        qubes = dom0.qubes()
        print(f"site.yml, the reference layout (inventories/t420s, {qubes} qubes), median of {runs}")
        show_run("--check --diff on a fresh dom0", check, qubes)
        show_run("first converge", first, qubes)
        show_noop("no-op", noop_against_empty(dom0, [*inventory, "site.yml"], [*inventory, empty_play(directory)],
                                              runs), qubes)
        profile(dom0, [*inventory, "site.yml"])
    finally:
        dom0.stop()


def synthetic(directory: str, sizes: list[int], runs: int) -> None:
    """Synthetic layouts through the qubes role."""
    print(f"playbooks/qubes.yml, synthetic layouts, median of {runs}")
    rows = []
    for count in sizes:
        where = os.path.join(directory, f"synthetic-{count}")
        os.makedirs(where)
        dom0 = Dom0(where)
        try:
            inventory = ["-i", synthetic_inventory(where, count)]
            first = measured(dom0, [*inventory, os.path.join(ROOT, "playbooks", "qubes.yml")])
            qubes = dom0.qubes()
            show_run(f"{count} qubes, first converge", first, qubes)
            figures = noop_against_empty(dom0, [*inventory, os.path.join(ROOT, "playbooks", "qubes.yml")],
                                         [*inventory, empty_play(where)], runs)
            show_noop(f"{count} qubes, no-op", figures, qubes)
            rows.append((count, figures))
            if count == sizes[-1]:
                profile(dom0, [*inventory, os.path.join(ROOT, "playbooks", "qubes.yml")])
        finally:
            dom0.stop()
    if len(rows) > 1:
        (small, low), (large, high) = rows[0], rows[-1]
        grows = (high["seconds"] - low["seconds"]) * 1000 / (large - small)
        calls = (high["calls"] - low["calls"]) / (large - small)
        print(f"  growth from {small} to {large} qubes: {grows:.1f} ms and {calls:.1f} Admin API calls per qube")


def connection(directory: str, runs: int, commands: int = 20) -> None:
    """Commands inside a running qube through corral.qubes.qrexec: calls and round trip per command."""
    from rehearsal import roots, rootfs  # pylint: disable=import-outside-toplevel
    reasons = roots.unavailable()
    if reasons:
        print(f"corral.qubes.qrexec: not measured ({'; '.join(reasons)})")
        return
    rootfs.build()
    dom0 = Dom0(directory, ["--roots", "on"])
    try:
        dom0.client.create("AppVM", "bench", "blue", template="debian-13-xfce")
        inventory = os.path.join(directory, "qube.yml")
        with open(inventory, "w", encoding="utf-8") as handle:
            yaml.safe_dump({"all": {"children": {"qubes_admin": {"hosts": {"bench": {
                "ansible_connection": "corral.qubes.qrexec", "ansible_python_interpreter": "/usr/bin/python3"}}}}}},
                handle)
        play = os.path.join(directory, "commands.yml")
        with open(play, "w", encoding="utf-8") as handle:
            yaml.safe_dump([{"name": "Commands", "hosts": "qubes_admin", "gather_facts": False,
                             "tasks": [{"name": f"Command {i}", "ansible.builtin.raw": "true"}
                                       for i in range(commands)]}], handle)
        measured(dom0, ["-i", inventory, play])  # starts the qube (once) and warms its root
        figures = noop_against_empty(dom0, ["-i", inventory, play], ["-i", inventory, empty_play(directory)], runs)
        per_command = (figures["seconds"] - figures["empty"]) * 1000 / commands
        print(f"corral.qubes.qrexec, {commands} raw commands in a running qube, median of {runs}")
        print(f"  {figures['qrexec'] / commands:.2f} qrexec calls and {figures['calls'] / commands:.2f} Admin API calls "
              f"per command; {per_command:.1f} ms per command over an empty play ({figures['seconds']:.2f} s against "
              f"{figures['empty']:.2f} s)")
    finally:
        dom0.stop()


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="15,50,100", help="synthetic layout sizes (comma-separated; empty: none)")
    parser.add_argument("--no-reference", action="store_true", help="leave out site.yml with the reference layout")
    parser.add_argument("--no-connection", action="store_true", help="leave out the connection plugin")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size]
    print(f"ansible-core {ansible_release.__version__} on Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as directory:
        if not args.no_reference:
            os.makedirs(os.path.join(directory, "reference"))
            reference(os.path.join(directory, "reference"), args.runs)
        if sizes:
            synthetic(directory, sizes, args.runs)
        if not args.no_connection:
            os.makedirs(os.path.join(directory, "connection"))
            connection(os.path.join(directory, "connection"), args.runs)


if __name__ == "__main__":
    main()
