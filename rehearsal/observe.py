# SPDX-License-Identifier: GPL-3.0-or-later
"""Call log and fault injection for the rehearsal dom0.

The call log is JSON lines, one per request::

    {"t": 1764240000.123, "method": "admin.vm.property.Set", "arg": "netvm",
     "source": "dom0", "dest": "work", "payload_bytes": 12,
     "result": "ok" | "exception" | "empty", "exc_class": "...", "duration_ms": 0.4,
     "mutating": true (the method writes state, as qubesd's own method table says),
     "fault": "fail" | "drop" (only when one was injected)}

Faults are given as ``METHOD:N:fail`` (the Nth call of METHOD answers a
``QubesException``), ``METHOD:N:drop`` (the Nth call gets an empty reply,
nothing executed), ``METHOD:N+:fail`` (every call from the Nth on), and
latency as ``METHOD:MS`` (``*`` matches every method).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import threading
import time

from ansible_collections.corral.qubes.plugins.module_utils import wire


class CallLog:
    """Appends one JSON line per call to a file (thread- and task-safe)."""

    def __init__(self, path: str | None):
        self.path = path
        self._lock = threading.Lock()
        self._fh = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 - kept open

    def write(self, entry: dict) -> None:
        """Record one call."""
        if self._fh is None:
            return
        with self._lock:
            self._fh.write(json.dumps(entry, sort_keys=True) + "\n")
            self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_call_log(path: str) -> list[dict]:
    """The entries of a call log file (tests and benchmarks)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@dataclasses.dataclass
class FaultRule:
    """Fail or drop the Nth (or Nth and later) call of a method."""

    method: str
    nth: int
    action: str
    onwards: bool = False

    def matches(self, method: str, count: int) -> bool:
        """Whether this rule hits call number ``count`` of ``method``."""
        if self.method not in ("*", method):
            return False
        return count >= self.nth if self.onwards else count == self.nth


class Faults:
    """Fault and latency injection, configured by the ``--fault`` / ``--latency`` options."""

    def __init__(self, faults=(), latencies=()):
        self.rules = [parse_fault(spec) for spec in faults]
        self.latency_ms: dict[str, float] = {}
        for spec in latencies:
            method, _sep, ms = spec.rpartition(":")
            try:
                self.latency_ms[method] = float(ms)
            except ValueError:
                raise ValueError(f"latency {spec!r}: expected METHOD:MILLISECONDS") from None
            if not method:
                raise ValueError(f"latency {spec!r}: expected METHOD:MILLISECONDS")
        self.counts: collections.Counter = collections.Counter()

    def next_call(self, method: str) -> tuple[str | None, float]:
        """Count a call; the fault to inject (fail/drop/None) and the latency in seconds."""
        self.counts[method] += 1
        count = self.counts[method]
        action = None
        for rule in self.rules:
            if rule.matches(method, count):
                action = rule.action
                break
        latency = self.latency_ms.get(method, self.latency_ms.get("*", 0.0))
        return action, latency / 1000.0


def parse_fault(spec: str) -> FaultRule:
    """``METHOD:N:fail|drop|garble`` or ``METHOD:N+:...``; ``policy.*:N:crash`` kills the server mid-write.

    ``garble`` answers with success and a payload no client can read (bytes that are not UTF-8): a way to make
    a module fail unexpectedly, as a bug of the module's own would.
    """
    try:
        method, nth, action = spec.rsplit(":", 2)
        onwards = nth.endswith("+")
        number = int(nth.rstrip("+"))
    except ValueError:
        raise ValueError(f"fault {spec!r}: expected METHOD:N:fail or METHOD:N:drop") from None
    if action not in ("fail", "drop", "crash", "garble") or number < 1 or not method:
        raise ValueError(f"fault {spec!r}: expected METHOD:N:fail, drop, garble or crash (N >= 1)")
    if action == "crash" and not method.startswith("policy."):
        raise ValueError(f"fault {spec!r}: crash applies to policy.* calls (the server dies between writing "
                         "the new file and renaming it into place)")
    return FaultRule(method=method, nth=number, action=action, onwards=onwards)


INJECTED_FAULT = wire.QubesException("Injected fault (rehearsal dom0)")
GARBLED_PAYLOAD = b"\xff\xfe injected garbage (rehearsal dom0)\n"


def log_entry(request: wire.Request, result: str, started: float, *, mutating: bool,
              exc_class: str | None = None, fault: str | None = None) -> dict:
    """A call log entry."""
    entry = {
        "t": round(time.time(), 6),
        "method": request.method,
        "arg": request.arg,
        "source": request.source,
        "dest": request.dest,
        "payload_bytes": len(request.payload),
        "result": result,
        "duration_ms": round((time.monotonic() - started) * 1000.0, 3),
        "mutating": mutating,
    }
    if exc_class:
        entry["exc_class"] = exc_class
    if fault:
        entry["fault"] = fault
    return entry
