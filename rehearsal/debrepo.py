# SPDX-License-Identifier: GPL-3.0-or-later
"""Local Debian package repositories: tiny .deb packages made with dpkg-deb, a flat index.

The tests make their own packages with :func:`build_package` and
:func:`write_repository`.  A world entry with ``repository: [NAMES]``
(:mod:`rehearsal.world`) gets a *stand-in* repository from
:func:`stand_in_repository`: one package per name, each holding only
``/usr/share/doc/NAME/stand-in``, so that a layout's packages (``firefox``,
``openvpn``) install for real — through apt, the updates proxy and dpkg —
without the software itself.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile
import time


def build_package(workdir: pathlib.Path, name: str, version: str, files: dict[str, bytes],
                  description: str = "a package made by the tests", modes: dict[str, int] | None = None) -> pathlib.Path:
    """``NAME_VERSION_all.deb`` holding ``files`` (absolute path -> content, ``modes`` path -> mode), built with dpkg-deb."""
    tree = workdir / f"{name}-{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: corral tests <tests@example.org>\n"
        f"Description: {description}\n", encoding="utf-8")
    for path, content in files.items():
        target = tree / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        if modes and path in modes:
            target.chmod(modes[path])
    deb = workdir / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)], check=True,
                   capture_output=True)
    return deb


def _field(control: str, key: str) -> str:
    for line in control.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(key)


def write_repository(directory: pathlib.Path, debs: list[pathlib.Path]) -> None:
    """A flat repository (``deb [trusted=yes] URL ./``): the packages, ``Packages`` and ``Release``.

    ``Packages`` holds what dpkg-scanpackages would write for each package:
    its control fields, then Filename, Size and checksums.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stanzas = []
    for deb in debs:
        data = deb.read_bytes()
        (directory / deb.name).write_bytes(data)
        control = subprocess.run(["dpkg-deb", "--field", str(deb)], check=True, capture_output=True,
                                 text=True).stdout.strip()
        assert _field(control, "Package")
        stanzas.append(f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
                       f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n")
    packages = "\n".join(stanzas).encode()
    (directory / "Packages").write_bytes(packages)
    date = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime())
    (directory / "Release").write_text(
        f"Origin: corral tests\nLabel: corral tests\nDate: {date}\nSHA256:\n"
        f" {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n", encoding="utf-8")


STAND_IN_VERSION = "999.0"
"""High: real Debian packages declare Breaks against old versions of some names (libc6: firefox << 91~)."""


def stand_in_repository(cache: str, names: list[str]) -> str:
    """A repository of stand-in packages named ``names`` under ``cache``, built once per set of names."""
    key = hashlib.sha256("\n".join(sorted(set(names))).encode()).hexdigest()[:16]
    directory = os.path.join(cache, "repos", f"stand-in-{key}")
    if os.path.exists(os.path.join(directory, "Release")):
        return directory
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix=".stand-in-", dir=os.path.dirname(directory)))
    try:
        debs = [build_package(work, name, STAND_IN_VERSION,
                              {f"/usr/share/doc/{name}/stand-in": f"{name}: a stand-in package of the rehearsal's world\n".encode()},
                              description=f"stand-in for {name} (rehearsal world)")
                for name in sorted(set(names))]
        write_repository(work / "repo", debs)
        try:
            os.rename(work / "repo", directory)
        except OSError:
            if not os.path.exists(os.path.join(directory, "Release")):  # another process made it meanwhile
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return directory
