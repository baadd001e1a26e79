# SPDX-License-Identifier: GPL-3.0-or-later
"""The tour ``make rehearse`` shows: the collection's client driving the rehearsal dom0."""

from __future__ import annotations

import collections

from ansible_collections.corral.qubes.plugins.module_utils import wire

from rehearsal import observe


def _table(rows, headers) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _qubes_table(client) -> str:
    rows = []
    for name, entry in client.list_vms().items():
        props = client.property_get_all(name)

        def value(prop, props=props):
            return props[prop].value if prop in props else "-"
        rows.append((name, entry.klass, entry.state, value("label"),
                     value("template") or "-", value("netvm") or "-", value("ip") or "-"))
    return _table(rows, ("NAME", "CLASS", "STATE", "LABEL", "TEMPLATE", "NETVM", "IP"))


def tour(client, args, release: str) -> None:
    """Print what a fresh rehearsal dom0 holds, change it, and show the call log."""
    print(f"== A fresh rehearsal dom0 (Qubes R{release}) on {args.socket}\n")
    print(_qubes_table(client))
    prefs = client.property_get_all(None)
    print("\n== Global preferences (qubes-prefs)")
    print(_table([(k, v.value, "default" if v.is_default else "set") for k, v in prefs.items()],
                 ("PROPERTY", "VALUE", "")))

    print("\n== Building a small compartment: a 'work' qube behind sys-firewall")
    template = prefs["default_template"].value
    client.create("AppVM", "work", "blue", template)
    client.property_set("work", "memory", 800)
    client.feature_set("work", "service.cups", False)
    client.tag_set("work", "corral-demo")
    client.firewall_set("work", ["action=accept dsthost=198.51.100.0/24", "action=accept specialtarget=dns",
                                 "action=drop"])
    client.start("work")
    print(_qubes_table(client))
    print("\nwork's firewall as qubesd keeps it:")
    for line in client.firewall_get("work"):
        print("  " + line)

    print("\n== Refusals come back as typed errors, and change nothing")
    for what, call in (
        ("a netvm that provides no network", lambda: client.property_set("work", "netvm", "default-dvm")),
        ("an unknown label", lambda: client.create("AppVM", "shop", "pink", template)),
        ("removing a template in use", lambda: client.remove(template)),
        ("a firewall rule with a bad port", lambda: client.firewall_set("work", ["action=accept proto=tcp dstports=99999"])),
    ):
        try:
            call()
        except wire.QubesException as exc:
            print(f"  {what}: {type(exc).__name__}: {exc}")

    print("\n== This tour's Admin API calls (client-side count)")
    counts = collections.Counter(client.calls)
    print(_table(sorted(counts.items()), ("METHOD", "CALLS")))
    if args.call_log:
        entries = observe.read_call_log(args.call_log)
        writes = sum(1 for e in entries if e.get("mutating") and e.get("result") == "ok")
        print(f"\nserver call log {args.call_log}: {len(entries)} calls, {writes} successful writes")
