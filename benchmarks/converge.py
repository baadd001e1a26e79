"""Convergence figures: a layout of many qubes through ansible-playbook against a rehearsal dom0.

Prints, for --qubes qubes: wall time of the first run (creates everything),
of a second run (no change), of a check-mode run with --diff after one
change, the Admin API calls each run made (reads and writes, from the
server's call log) and the engine's own planning time per qube without
Ansible around it.  Nothing is asserted: these are measurements.
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


def playbook(directory: str, qubes: list[dict]) -> str:
    """A play converging ``qubes`` with one looped task."""
    path = os.path.join(directory, "site.yml")
    tasks = [{"name": "qubes", "corral.qubes.qube": "{{ item }}", "loop": qubes,
              "loop_control": {"label": "{{ item.name }}"}}]
    with open(path, "w", encoding="utf-8") as fh:
        json.dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], fh)
    return path


def count_calls(log: str, since: int) -> tuple[int, int, int]:
    """(new mark, calls since ``since``, successful writes since ``since``)."""
    with open(log, encoding="utf-8") as fh:
        lines = fh.readlines()
    calls = [json.loads(line) for line in lines[since:]]
    writes = sum(1 for call in calls if call.get("mutating") and call.get("result") == "ok")
    return len(lines), len(calls), writes


def run_playbook(path: str, sock: str, directory: str, *extra: str) -> float:
    """Wall seconds of one ansible-playbook run."""
    env = dict(os.environ, QUBESD_SOCKET=sock, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_LOCAL_TEMP=os.path.join(directory, "tmp"),
               PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    started = time.monotonic()
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local", path, *extra],
                          env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubes", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as directory:
        log = os.path.join(directory, "calls.jsonl")
        proc, sock, _startup = _start(directory, ["--call-log", log])
        try:
            qubes = layout(args.qubes)
            path = playbook(directory, qubes)
            mark = 0
            rows = []
            for title, extra in (("first run (create all)", ()), ("second run (no change)", ())):
                seconds = run_playbook(path, sock, directory, *extra)
                mark, calls, writes = count_calls(log, mark)
                rows.append((title, seconds, calls, writes))
            qubes[0]["properties"]["memory"] = 1234
            path = playbook(directory, qubes)
            seconds = run_playbook(path, sock, directory, "--check", "--diff")
            mark, calls, writes = count_calls(log, mark)
            rows.append(("check mode + diff, 1 change", seconds, calls, writes))

            client = client_mod.AdminClient(client_mod.SocketTransport(sock))
            started = time.monotonic()
            for qube in qubes:
                engine.plan_qube(engine.Reader(client), qube)
            plan_ms = (time.monotonic() - started) * 1000 / len(qubes)
        finally:
            proc.terminate()
            proc.wait()
    print(f"corral.qubes.qube over {args.qubes} qubes (2 cores, rehearsal dom0, local connection)")
    for title, seconds, calls, writes in rows:
        print(f"  {title:30s} {seconds:6.2f} s  {seconds * 1000 / args.qubes:6.1f} ms/qube  "
              f"{calls:5d} API calls ({calls / args.qubes:4.1f}/qube), {writes} writes")
    print(f"  engine plan alone (no Ansible)  {plan_ms:6.2f} ms/qube")


if __name__ == "__main__":
    main()
