# SPDX-License-Identifier: GPL-3.0-or-later
"""Admin API figures: the client against a rehearsal dom0 on a real socket.

Prints, for a dom0 holding --qubes qubes: server start time, per-call
latency (median and 95th percentile) of the calls the collection will make
most, the cost of reading every qube's properties with one GetAll per qube
versus one Get per property, throughput with concurrent clients, and the
server's resident memory.  Nothing is asserted: these are measurements.

    python -m benchmarks.admin_api [--qubes 50] [--rounds 300]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import time

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _start(directory: str, extra=()) -> tuple[subprocess.Popen, str, float]:
    sock = os.path.join(directory, "qubesd.sock")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "rehearsal", "serve", "--state", os.path.join(directory, "state"),
                             "--socket", sock, "--shutdown-delay", "0", *extra], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = client_mod.AdminClient(client_mod.SocketTransport(sock))
    while True:
        try:
            client.vm_classes()
            break
        except Exception:  # pylint: disable=broad-exception-caught
            if proc.poll() is not None or time.monotonic() - started > 30:
                raise RuntimeError("rehearsal dom0 did not start") from None
            time.sleep(0.005)
    return proc, sock, time.monotonic() - started


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _timed(func, rounds: int) -> list[float]:
    samples = []
    for _i in range(rounds):
        started = time.perf_counter()
        func()
        samples.append((time.perf_counter() - started) * 1000.0)
    return samples


def _row(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"  {name:<44} median {statistics.median(samples):7.3f} ms   p95 {p95:7.3f} ms   (n={len(samples)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubes", type=int, default=50, help="AppVMs to add to the fresh dom0")
    parser.add_argument("--rounds", type=int, default=300, help="samples per call")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as directory:
        proc, sock, startup = _start(directory)
        try:
            client = client_mod.AdminClient(client_mod.SocketTransport(sock))
            print(f"rehearsal dom0 start (fresh state, socket answering): {startup * 1000:.0f} ms")
            print(f"server RSS, fresh: {_rss_kib(proc.pid) / 1024:.1f} MiB")
            created = _timed(lambda: client.create("AppVM", f"q{len(client.list_vms())}", "blue"), args.qubes)
            count = len(client.list_vms())
            print(f"server RSS with {count} qubes: {_rss_kib(proc.pid) / 1024:.1f} MiB\n")
            print(f"per-call latency, {count} qubes (client + socket + server + atomic state write for writes):")
            print(_row("admin.vm.Create.AppVM (write)", created))
            print(_row("admin.vm.List (all qubes)", _timed(client.list_vms, args.rounds)))
            print(_row("admin.vm.property.Get netvm", _timed(lambda: client.property_get("q10", "netvm"), args.rounds)))
            print(_row("admin.vm.property.GetAll", _timed(lambda: client.property_get_all("q10"), args.rounds)))
            print(_row("admin.vm.property.Set memory (write)",
                       _timed(lambda: client.property_set("q10", "memory", 512), args.rounds)))
            print(_row("admin.vm.feature.Set (write)",
                       _timed(lambda: client.feature_set("q10", "service.cups", ""), args.rounds)))
            print(_row("admin.vm.firewall.Get", _timed(lambda: client.firewall_get("q10"), args.rounds)))
            print(_row("admin.vm.volume.Info private", _timed(lambda: client.volume_info("q10", "private"), args.rounds)))

            names = list(client.list_vms())
            prop_names = client.property_list("q10")
            before = sum(client.calls.values())
            started = time.perf_counter()
            for name in names:
                client.property_get_all(name)
            getall_s, getall_calls = time.perf_counter() - started, sum(client.calls.values()) - before
            before = sum(client.calls.values())
            started = time.perf_counter()
            for name in names:
                for prop in client.property_list(name):
                    client.property_get(name, prop)
            get_s, get_calls = time.perf_counter() - started, sum(client.calls.values()) - before
            print(f"\nreading every property of all {count} qubes ({len(prop_names)} properties per AppVM):")
            print(f"  one GetAll per qube:     {getall_calls:5d} calls  {getall_s * 1000:8.1f} ms")
            print(f"  one Get per property:    {get_calls:5d} calls  {get_s * 1000:8.1f} ms"
                  f"   ({get_s / getall_s:.0f}x slower)")

            def worker(_n):
                own = client_mod.AdminClient(client_mod.SocketTransport(sock))
                for _i in range(100):
                    own.property_get("q10", "memory")
            for workers in (1, 4, 16):
                started = time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                    list(pool.map(worker, range(workers)))
                elapsed = time.perf_counter() - started
                print(f"  {workers:2d} concurrent clients: {workers * 100 / elapsed:8.0f} property.Get calls/s")
            print(f"\nserver RSS at the end: {_rss_kib(proc.pid) / 1024:.1f} MiB")
        finally:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
