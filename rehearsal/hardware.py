# SPDX-License-Identifier: GPL-3.0-or-later
"""The host a rehearsal dom0 pretends to run on: CPU, memory, virtualization, PCI devices.

One profile per machine; ``t420s`` (a Lenovo ThinkPad T420s) is the reference
laptop.  The Admin API's device methods (:mod:`rehearsal.devices`) expose its
PCI devices; the ``xl`` stand-in (``rehearsal/bin/xl``) prints its ``xl info``.
Names of vendors, products and device classes are those of the PCI ID
database (``pci.ids``), as qubesd reads them.
"""

from __future__ import annotations

import os

T420S = {
    "name": "t420s",
    "model": "Lenovo ThinkPad T420s",
    "cpu": {"model": "Intel(R) Core(TM) i7-2640M CPU @ 2.80GHz", "sockets": 1, "cores_per_socket": 2,
            "threads_per_core": 2, "mhz": 2791},
    "virt_caps": ["pv", "hvm", "hvm_directio", "pv_directio", "hap", "shadow"],
    "memory_mib": 16384,
    "disk_bytes": 256060514304,
    "xen_version": "4.19.3",
    "pci": {
        "00_19.0": {"vendor_id": "8086", "product_id": "1502", "class": "020000",
                    "vendor": "Intel Corporation", "product": "82579LM Gigabit Network Connection (Lewisville)",
                    "class_name": "Ethernet controller"},
        "03_00.0": {"vendor_id": "8086", "product_id": "0085", "class": "028000",
                    "vendor": "Intel Corporation", "product": "Centrino Advanced-N 6205 [Taylor Peak]",
                    "class_name": "Network controller"},
        "00_1a.0": {"vendor_id": "8086", "product_id": "1c2d", "class": "0c0320",
                    "vendor": "Intel Corporation",
                    "product": "6 Series/C200 Series Chipset Family USB Enhanced Host Controller #2",
                    "class_name": "USB controller"},
        "00_1d.0": {"vendor_id": "8086", "product_id": "1c26", "class": "0c0320",
                    "vendor": "Intel Corporation",
                    "product": "6 Series/C200 Series Chipset Family USB Enhanced Host Controller #1",
                    "class_name": "USB controller"},
    },
}

PROFILES = {"t420s": T420S}
NETWORK_CARDS = ("00_19.0", "03_00.0")
USB_CONTROLLERS = ("00_1a.0", "00_1d.0")
DOM0_MEMORY_MIB = 4096
"""dom0's memory share (``dom0_mem``) on the reference machine."""


def profile(name: str | None = None) -> dict:
    """A host profile by name (``$REHEARSAL_HOST`` or ``t420s``)."""
    name = name or os.environ.get("REHEARSAL_HOST") or "t420s"
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"no host profile {name!r} (known: {', '.join(sorted(PROFILES))})") from None


def pci_device_id(info: dict) -> str:
    """R4.3's device id of a PCI device: ``0x<vendor>:0x<product>::p<class>``."""
    return f"0x{info['vendor_id']}:0x{info['product_id']}::p{info['class']}"


def pci_devices(host: dict) -> dict[str, dict]:
    """The host's PCI devices as the rehearsal keeps them: port id -> what qubesd reports."""
    devices = {}
    for port, info in host["pci"].items():
        bus, _sep, rest = port.partition("_")
        devices[port] = {
            "device_id": pci_device_id(info), "vendor": info["vendor"], "product": info["product"],
            "interfaces": f"p{info['class']}", "sbdf": f"0000:{bus}:{rest}",
            "description": f"{info['class_name']}: {info['vendor']} {info['product']}",
        }
    return devices


def xl_info(host: dict, free_mib: int) -> str:
    """``xl info`` as Xen prints it (one ``key : value`` per line, keys padded to 23 columns)."""
    cpu = host["cpu"]
    threads = cpu["sockets"] * cpu["cores_per_socket"] * cpu["threads_per_core"]
    major, minor, _patch = host["xen_version"].split(".")
    fields = [
        ("host", "dom0"), ("release", "6.12.48-1.qubes.fc41.x86_64"),
        ("version", "#1 SMP PREEMPT_DYNAMIC"), ("machine", "x86_64"),
        ("nr_cpus", threads), ("max_cpu_id", threads - 1), ("nr_nodes", 1),
        ("cores_per_socket", cpu["cores_per_socket"]), ("threads_per_core", cpu["threads_per_core"]),
        ("cpu_mhz", f"{cpu['mhz']}.998"),
        ("hw_caps", "bfebfbff:17bae3ff:28100800:00000001:00000000:00000000:00000000:00000100"),
        ("virt_caps", " ".join(host["virt_caps"])),
        ("total_memory", host["memory_mib"] - 130), ("free_memory", max(free_mib, 0)),
        ("sharing_freed_memory", 0), ("sharing_used_memory", 0), ("outstanding_claims", 0),
        ("free_cpus", 0), ("xen_major", major), ("xen_minor", minor),
        ("xen_extra", f".{host['xen_version'].split('.')[2]}"), ("xen_version", host["xen_version"]),
        ("xen_caps", "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64"),
        ("xen_scheduler", "credit2"), ("xen_pagesize", 4096),
        ("platform_params", "virt_start=0xffff800000000000"),
        ("xen_changeset", ""),
        ("xen_commandline", f"dom0_mem=min:1024M dom0_mem=max:{DOM0_MEMORY_MIB}M ucode=scan gnttab_max_frames=2048"),
        ("cc_compiler", "gcc (GCC) 14.2.1"), ("cc_compile_by", "mockbuild"),
        ("cc_compile_domain", "[unknown]"), ("cc_compile_date", "Tue Nov  4 00:00:00 UTC 2025"),
        ("build_id", "0d4c1c2e3f405162738495a6b7c8d9eaf0b1c2d3"),
        ("xend_config_format", 4),
    ]
    return "".join(f"{key:<23}: {value}\n" for key, value in fields)
