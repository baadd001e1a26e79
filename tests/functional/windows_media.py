# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in for the vendor's Windows 7 ISO, made by the tests: a small ISO that BIOS firmware boots.

ISOLINUX (Debian's isolinux package) is its El Torito boot image, as a real DVD carries its boot sector;
``sources/install.wim`` is random bytes of the size asked, ``setup.exe`` a placeholder, and the volume id is the
retail DVD's form.  The rehearsal's HVM installer stand-in tells a Windows medium by its boot record and
``sources/install.wim``.
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
        (tree / "isolinux").mkdir()
        shutil.copy(ISOLINUX, tree / "isolinux" / "isolinux.bin")
        shutil.copy(LDLINUX, tree / "isolinux" / "ldlinux.c32")
        (tree / "isolinux" / "isolinux.cfg").write_text("default setup\nlabel setup\n  kernel /setup.exe\n")
        argv += ["-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4",
                 "-boot-info-table"]
    subprocess.run([*argv, str(tree)], check=True, capture_output=True)
    shutil.rmtree(tree)
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def el_torito(path: pathlib.Path) -> str:
    """xorriso's report of the ISO's El Torito boot records."""
    result = subprocess.run(["xorriso", "-indev", str(path), "-report_el_torito", "plain"], capture_output=True,
                            text=True, check=True)
    return result.stdout
