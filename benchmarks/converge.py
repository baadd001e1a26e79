"""Convergence figures: a layout of many qubes through ansible-playbook against a rehearsal dom0.

Prints, for --qubes qubes: wall time of the first run (creates everything),
of a second run (no change), of a check-mode run with --diff after one
change and of the no-change run with the modules as separate processes,
the Admin API calls each run made (reads and writes, from the server's call
log) and the engine's own planning time per qube without Ansible around it;
then the firewall module's whitelists for the same qubes in one task and
looped per qube, and the project's site.yml with the reference layout.
Nothing is asserted: these are measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod
from ansible_collections.corral.qubes.plugins.module_utils import engine
from benchmarks.admin_api import ROOT, _start

BIN = os.path.dirname(sys.executable)
LABELS = ("red", "orange", "yellow", "green", "gray", "blue", "purple", "black")


def layout(count: int) -> list[dict]:
    """``count`` qubes in the shape of the reference layout's domains."""
    qubes = []
    for index in range(count):
        qube = {"name": f"dom-{index:03d}", "label": LABELS[index % len(LABELS)],
                "netvm": "" if index % 5 == 0 else "sys-firewall",
                "properties": {"memory": 400 + 100 * (index % 4), "vcpus": 1 + index % 2},
                "services": {"cups": index % 2 == 0}, "features": {"corral-index": index},
                "tags": ["corral", f"group-{index % 3}"], "volumes": {"private": f"{2 + index % 3}GiB"}}
        qubes.append(qube)
    return qubes


def playbook(directory: str, qubes: list[dict], module_process: bool = False) -> str:
    """A play converging ``qubes`` with one looped task (as separate module processes if asked)."""
    path = os.path.join(directory, "play.yml")
    task = {"name": "qubes", "corral.qubes.qube": "{{ item }}", "loop": qubes,
            "loop_control": {"label": "{{ item.name }}"}}
    if module_process:
        task["environment"] = {"CORRAL_BENCH": "1"}  # a task environment: Ansible runs the module process
    with open(path, "w", encoding="utf-8") as fh:
        json.dump([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}], fh)
    return path


def firewall_playbooks(directory: str, qubes: list[dict]) -> tuple[str, str]:
    """Two plays setting a five-rule whitelist on every qube: one task for all, and a task looped per qube."""
    rules = [{"dsthost": "bank.example.com", "proto": "tcp", "dstports": 443}, {"dsthost": "198.51.100.0/24"},
             {"dsthost": "mail.example.org", "proto": "tcp", "dstports": 993},
             {"dsthost": "203.0.113.0/28", "proto": "tcp", "dstports": "8000-8100"}]
    spec = {"policy": "whitelist", "rules": rules}
    one = {"name": "all", "corral.qubes.firewall": {"qubes": {qube["name"]: spec for qube in qubes}}}
    loop = {"name": "each", "corral.qubes.firewall": {"name": "{{ item }}", **spec},
            "loop": [qube["name"] for qube in qubes]}
    paths = []
    for name, task in (("firewall-one.yml", one), ("firewall-loop.yml", loop)):
        paths.append(os.path.join(directory, name))
        with open(paths[-1], "w", encoding="utf-8") as fh:
            json.dump([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}], fh)
    return paths[0], paths[1]


def count_calls(log: str, since: int) -> tuple[int, int, int]:
    """(new mark, calls since ``since``, successful writes since ``since``)."""
    with open(log, encoding="utf-8") as fh:
        lines = fh.readlines()
    calls = [json.loads(line) for line in lines[since:]]
    writes = sum(1 for call in calls if call.get("mutating") and call.get("result") == "ok")
    return len(lines), len(calls), writes


def run_playbook(args: list, sock: str, directory: str) -> float:
    """Wall seconds of one ansible-playbook run from the repository root."""
    env = dict(os.environ, QUBESD_SOCKET=sock, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
               QREXEC_CLIENT=os.path.join(ROOT, "rehearsal", "bin", "qrexec-client"),
               REHEARSAL_QREXEC_SOCKET=sock.removesuffix(".sock") + ".qrexec.sock",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_LOCAL_TEMP=os.path.join(directory, "tmp"),
               ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    started = time.monotonic()
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    return elapsed


def measure(runs: list, directory: str) -> list:
    """(title, seconds, calls, writes) of each (title, ansible-playbook args) on one fresh rehearsal dom0."""
    log = os.path.join(directory, "calls.jsonl")
    proc, sock, _startup = _start(directory, ["--call-log", log])
    rows, mark = [], 0
    try:
        for title, args in runs:
            seconds = run_playbook(args, sock, directory)
            mark, calls, writes = count_calls(log, mark)
            rows.append((title, seconds, calls, writes))
    finally:
        proc.terminate()
        proc.wait()
    return rows


def plan_time(qubes: list, directory: str) -> float:
    """Milliseconds per qube of the engine's planning alone, against a dom0 holding ``qubes``."""
    proc, sock, _startup = _start(directory)
    try:
        client = client_mod.AdminClient(client_mod.SocketTransport(sock))
        for qube in qubes:
            engine.plan_qube(engine.Reader(client), qube).apply(client)
        started = time.monotonic()
        for qube in qubes:
            engine.plan_qube(engine.Reader(client), qube)
        return (time.monotonic() - started) * 1000 / len(qubes)
    finally:
        proc.terminate()
        proc.wait()


def show(title: str, rows: list, count: int) -> None:
    """Print one table of figures."""
    print(title)
    for name, seconds, calls, writes in rows:
        print(f"  {name:36s} {seconds:6.2f} s  {seconds * 1000 / count:6.1f} ms/qube  "
              f"{calls:5d} API calls ({calls / count:4.1f}/qube), {writes} writes")


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubes", type=int, default=40)
    args = parser.parse_args()
    qubes = layout(args.qubes)
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as directory:
        changed = [dict(qube) for qube in qubes]
        changed[0] = {**changed[0], "properties": {**changed[0]["properties"], "memory": 1234}}
        plays = {}
        for name, batch in (("first", qubes), ("changed", changed), ("modules", qubes)):
            os.makedirs(os.path.join(directory, name))
            plays[name] = playbook(os.path.join(directory, name), batch, module_process=name == "modules")
        inventory = ["-i", "localhost,", "-c", "local"]
        rows = measure([("first run (create all)", [*inventory, plays["first"]]),
                        ("second run (no change)", [*inventory, plays["first"]]),
                        ("check mode + diff, 1 change", [*inventory, plays["changed"], "--check", "--diff"]),
                        ("no change, as module processes", [*inventory, plays["modules"]])],
                       os.path.join(directory, "first"))
        show(f"corral.qubes.qube over {args.qubes} qubes (rehearsal dom0, local connection)", rows, args.qubes)
        print(f"  {'engine plan alone (no Ansible)':36s} {plan_time(qubes, os.path.join(directory, 'changed')):6.2f}"
              " ms/qube")
        one, loop = firewall_playbooks(os.path.join(directory, "changed"), qubes)
        firewall_rows = measure([("create the qubes", [*inventory, plays["first"]]),
                                 ("whitelists, one task (first)", [*inventory, one]),
                                 ("whitelists, one task (no change)", [*inventory, one]),
                                 ("whitelists, task per qube (no change)", [*inventory, loop])],
                                os.path.join(directory, "changed"))
        show(f"corral.qubes.firewall over {args.qubes} qubes (5-rule whitelists)", firewall_rows[1:], args.qubes)
        site = measure([("check mode + diff on a fresh dom0", ["site.yml", "--check", "--diff"]),
                        ("build", ["site.yml"]), ("again (no change)", ["site.yml"])],
                       os.path.join(directory, "modules"))
        show("ansible-playbook site.yml (the reference layout: 10 qubes + global preferences)", site, 10)


if __name__ == "__main__":
    main()
