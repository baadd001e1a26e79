# SPDX-License-Identifier: GPL-3.0-or-later
"""Stand-ins for the vendors' install ISOs, made by the tests: small ISOs that BIOS firmware boots.

ISOLINUX (Debian's isolinux package) is their El Torito boot image, as a real disc carries its boot sector.

* Windows 7: ``sources/install.wim`` is random bytes of the size asked, ``setup.exe`` a placeholder, and the volume
  id is the retail DVD's form.  The rehearsal's HVM installer stand-in tells a Windows medium by its boot record
  and ``sources/install.wim``.
* FreeBSD: ``usr/freebsd-dist`` holds the distribution sets (random bytes) and a ``MANIFEST`` in the release's
  form (file, sha256, file count, set, description, selected), ``bin/freebsd-version`` says the release, and the
  volume id is the disc1 form.  The stand-in tells a FreeBSD medium by its boot record and the MANIFEST.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess

ISOLINUX = pathlib.Path("/usr/lib/ISOLINUX/isolinux.bin")
LDLINUX = pathlib.Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")


def missing() -> list[str]:
    """What this machine lacks to make the ISO (Debian packages xorriso, isolinux, syslinux-common)."""
    lacks = [] if shutil.which("xorriso") else ["xorriso"]
    return lacks + [str(path) for path in (ISOLINUX, LDLINUX) if not path.exists()]


def make_windows_iso(dest: pathlib.Path, wim_bytes: int = 1 << 20, bootable: bool = True) -> str:
    """Write the ISO to ``dest``; its sha256."""
    tree = dest.parent / (dest.name + ".tree")
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "sources").mkdir(parents=True)
    (tree / "sources" / "install.wim").write_bytes(os.urandom(wim_bytes))
    (tree / "setup.exe").write_bytes(b"MZ stand-in\n")
    argv = ["xorriso", "-as", "mkisofs", "-quiet", "-o", str(dest), "-J", "-r", "-V", "GRMCPRXFRER_EN_DVD"]
    if bootable:
        argv += _bootable(tree, "/setup.exe")
    subprocess.run([*argv, str(tree)], check=True, capture_output=True)
    shutil.rmtree(tree)
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def _bootable(tree: pathlib.Path, kernel: str) -> list[str]:
    """ISOLINUX in ``tree`` and the mkisofs arguments that make it the El Torito boot image."""
    (tree / "isolinux").mkdir()
    shutil.copy(ISOLINUX, tree / "isolinux" / "isolinux.bin")
    shutil.copy(LDLINUX, tree / "isolinux" / "ldlinux.c32")
    (tree / "isolinux" / "isolinux.cfg").write_text(f"default setup\nlabel setup\n  kernel {kernel}\n")
    return ["-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4",
            "-boot-info-table"]


FREEBSD_SETS = {"base.txz": ("base", "Base system", "on"), "kernel.txz": ("kernel", "Kernel", "on"),
                "lib32.txz": ("lib32", "32-bit compatibility libraries", "on"), "tests.txz": ("tests", "Test suite", "off")}


def make_freebsd_iso(dest: pathlib.Path, release: str = "14.3-RELEASE", sets: tuple[str, ...] = tuple(FREEBSD_SETS),
                     set_bytes: int = 1 << 18) -> str:
    """Write a FreeBSD disc1 stand-in to ``dest`` with the distribution ``sets``; its sha256."""
    tree = dest.parent / (dest.name + ".tree")
    shutil.rmtree(tree, ignore_errors=True)
    dist = tree / "usr" / "freebsd-dist"
    dist.mkdir(parents=True)
    manifest = []
    for name in sets:
        data = os.urandom(set_bytes)
        (dist / name).write_bytes(data)
        short, description, selected = FREEBSD_SETS[name]
        manifest.append(f"{name}\t{hashlib.sha256(data).hexdigest()}\t{set_bytes // 512}\t{short}\t"
                        f"\"{description}\"\t{selected}\n")
    (dist / "MANIFEST").write_text("".join(manifest))
    (tree / "bin").mkdir()
    (tree / "bin" / "freebsd-version").write_text(f"#!/bin/sh\necho {release}\n")
    (tree / "etc").mkdir()
    (tree / "etc" / "rc.local").write_text("# the installer's start: bsdinstall, or the script in /etc/installerconfig\n")
    argv = ["xorriso", "-as", "mkisofs", "-quiet", "-o", str(dest), "-r", "-V",
            f"{release.replace('.', '_').replace('-', '_')}_AMD64_CD", *_bootable(tree, "/boot/loader")]
    subprocess.run([*argv, str(tree)], check=True, capture_output=True)
    shutil.rmtree(tree)
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def el_torito(path: pathlib.Path) -> str:
    """xorriso's report of the ISO's El Torito boot records."""
    result = subprocess.run(["xorriso", "-indev", str(path), "-report_el_torito", "plain"], capture_output=True,
                            text=True, check=True)
    return result.stdout
