# SPDX-License-Identifier: GPL-3.0-or-later
"""Qube roots: a block device attached to a running qube appears in it as /dev/xvdX (the backend's file, bound)."""

from __future__ import annotations

import subprocess

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import formats

from harness import QREXEC_CLIENT
from rehearsal import roots, rootfs

REASONS = roots.unavailable()
pytestmark = pytest.mark.skipif(bool(REASONS), reason=f"qube roots: {'; '.join(REASONS)}")

DATA = "".join(f"corral block {n:06d}\n" for n in range(20000))
"""What the backend's file holds (about 400 KiB, not a multiple of a sector: the device is the file, byte for byte)."""
LOOP_ID = "0000:0000::?******"
"""The device id of a loop device (it tells no vendor or product)."""


def inside(dom0, qube: str, command: str) -> subprocess.CompletedProcess:
    """``command`` in the qube as root (qubes.VMShell, as dom0's qrexec-client runs it)."""
    return subprocess.run([str(QREXEC_CLIENT), "-d", qube, "root:QUBESRPC qubes.VMShell dom0"], input=command,
                          capture_output=True, text=True, env=dom0.qube_env(), timeout=120, check=False)


def ok(dom0, qube: str, command: str) -> str:
    result = inside(dom0, qube, command)
    assert result.returncode == 0, result.stderr
    return result.stdout


def block_lab(dom0_factory, release: str):
    """A fresh dom0 on ``release`` with roots: ``untrusted`` holds a file set up as loop0, ``media`` runs."""
    rootfs.build()
    dom0 = dom0_factory(release=release, extra_args=("--roots", "on", "--network", "off"))
    client = dom0.client()
    for name in ("untrusted", "media"):
        client.create("AppVM", name, "red")
        client.start(name)
    # R4.3's file on the private volume (as an ISO in a home), R4.2's on the qube's own tmpfs: both are
    # paths of the backend's mount namespace only
    path = "/home/user/disk.img" if release == "4.3" else "/tmp/disk.img"
    ok(dom0, "untrusted", f"cat > {path} <<'EOF'\n{DATA}EOF\n")
    assert ok(dom0, "untrusted", f"losetup -f --show {path}") == "/dev/loop0\n"
    return dom0, path


def attach(dom0, release: str, frontend: str, backend: str, port: str, options: dict) -> None:
    """``admin.vm.device.block.Attach`` now (not persistent), as each release's qvm-block sends it."""
    if release == "4.2":
        payload = " ".join(f"{key}={value}" for key, value in options.items())
    else:
        items = [("device_id", LOOP_ID), ("port_id", port), ("devclass", "block"), ("backend_domain", backend),
                 ("mode", "manual"), ("frontend_domain", frontend)]
        payload = formats.render_device_properties(items + [(f"_{key}", value) for key, value in options.items()])
    dom0.client().call("admin.vm.device.block.Attach", frontend, f"{backend}+{port}", payload)


def detach(dom0, frontend: str, backend: str, port: str) -> None:
    dom0.client().call("admin.vm.device.block.Detach", frontend, f"{backend}+{port}")


@pytest.mark.parametrize("release", ["4.3", "4.2"])
def test_an_attached_block_device_appears_in_the_frontend_read_only(dom0_factory, release):
    """Attach untrusted:loop0 read-only as xvdi: media reads the file's bytes and cannot write; detach: gone."""
    dom0, path = block_lab(dom0_factory, release)
    assert "xvdi" not in ok(dom0, "media", "ls /dev")
    attach(dom0, release, "media", "untrusted", "loop0", {"read-only": "True", "frontend-dev": "xvdi"})
    assert ok(dom0, "media", "cat /dev/xvdi") == DATA
    written = inside(dom0, "media", "echo overwritten > /dev/xvdi")
    assert written.returncode != 0 and "Read-only file system" in written.stderr
    assert ok(dom0, "untrusted", f"cat {path}") == DATA
    detach(dom0, "media", "untrusted", "loop0")
    assert inside(dom0, "media", "test -e /dev/xvdi").returncode == 1
    assert "xvdi" not in ok(dom0, "media", "cat /proc/self/mountinfo")


@pytest.mark.parametrize("release", ["4.3", "4.2"])
def test_a_writable_attachment_writes_the_backend_file_and_goes_when_the_backend_stops(dom0_factory, release):
    """Without read-only the frontend writes the backend's file; with no frontend-dev the first free xvd name."""
    dom0, path = block_lab(dom0_factory, release)
    ok(dom0, "media", ": > /dev/xvdi")  # xvdi is taken in media: the device takes the next name
    attach(dom0, release, "media", "untrusted", "loop0", {})
    assert ok(dom0, "media", "head -c 20 /dev/xvdj") == DATA[:20]
    ok(dom0, "media", "printf 'written in media' | dd of=/dev/xvdj conv=notrunc status=none")
    assert ok(dom0, "untrusted", f"head -c 16 {path}") == "written in media"
    client = dom0.client()
    listed = client.call("admin.vm.device.block.List" if release == "4.2" else "admin.vm.device.block.Attached", "media")
    assert "untrusted+loop0" in listed
    client.shutdown("untrusted", wait=True)
    assert inside(dom0, "media", "test -e /dev/xvdj").returncode == 1
    listed = client.call("admin.vm.device.block.List" if release == "4.2" else "admin.vm.device.block.Attached", "media")
    assert "untrusted+loop0" not in listed
    assert ok(dom0, "media", "ls /dev/xvdi") == "/dev/xvdi\n"


def test_a_frontend_dev_in_use_fails_the_attachment(dom0_factory):
    """A frontend-dev that exists in the qube: the attachment fails and nothing is attached."""
    dom0, _path = block_lab(dom0_factory, "4.3")
    ok(dom0, "media", ": > /dev/xvdk")
    with pytest.raises(Exception, match="xvdk already exists"):
        attach(dom0, "4.3", "media", "untrusted", "loop0", {"frontend-dev": "xvdk"})
    assert dom0.client().call("admin.vm.device.block.Attached", "media") == ""
    attach(dom0, "4.3", "media", "untrusted", "loop0", {"frontend-dev": "xvdl"})
    assert ok(dom0, "media", "wc -c < /dev/xvdl") == f"{len(DATA)}\n"
