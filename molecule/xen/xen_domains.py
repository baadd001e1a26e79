# SPDX-License-Identifier: GPL-3.0-or-later
"""Print, as JSON, the domains Xen runs (not what the rehearsal believes): name to type, memory and maxmem in MiB,
vcpus and state, from ``xl list -l`` (libxl's domain configurations) and ``xl list`` (the state letters) and
``xl vcpu-list`` (the vcpus Xen has for each)."""

import json
import subprocess


def xl(*args: str) -> str:
    return subprocess.run(["xl", *args], capture_output=True, text=True, check=True).stdout


def main() -> None:
    states = {}
    for line in xl("list").splitlines()[1:]:
        fields = line.split()
        states[fields[0]] = fields[4].replace("-", "")
    vcpus: dict[str, int] = {}
    for line in xl("vcpu-list").splitlines()[1:]:
        name = line.split()[0]
        vcpus[name] = vcpus.get(name, 0) + 1
    domains = {}
    for entry in json.loads(xl("list", "-l") or "[]"):
        c_info, b_info = entry["config"]["c_info"], entry["config"]["b_info"]
        name = c_info["name"]
        domains[name] = {"type": c_info.get("type"), "memory": b_info["target_memkb"] // 1024,
                         "maxmem": b_info["max_memkb"] // 1024, "vcpus": vcpus.get(name, 0),
                         "state": {"p": "paused"}.get(states.get(name, ""), "running")}
    print(json.dumps(domains, sort_keys=True))


main()
