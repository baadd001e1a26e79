# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a role applies inside a qube, and the digest that records it.

A role that configures the inside of a qube (packages, files) records what it
applied as a digest in a qube feature.  The next run computes the digest of
what the layout wants and compares it with the feature, which costs Admin API
reads only: the qube is connected to (and started) only when the two differ.

The digest covers exactly what is applied: the packages to install and to
remove (as sets) and each file's path, owner, group, mode and the SHA-256 of
its content.  Anything else in a layout entry (label, clone source, restart
wishes) does not change what is inside the qube and is left out.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re

DIGEST_PREFIX = "sha256:"
PACKAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._~:@-]*$")
"""A package name as dnf and apt accept it (version and architecture suffixes included)."""
MODE_RE = re.compile(r"^0?[0-7]{3,4}$")
OWNER_RE = re.compile(r"^[a-z_][a-z0-9_-]*\$?$|^[0-9]+$")
FILE_KEYS = ("dest", "content", "src", "mode", "owner", "group", "no_log")
HIDDEN = "VALUE_HIDDEN_BY_NO_LOG"
"""What stands for a secret file's content, and for its hash in what a run prints."""
ENTRY_KEYS = ("packages", "packages_absent", "files")


class InsideError(ValueError):
    """A layout entry that cannot be applied; ``path`` says where."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path


def _packages(path: str, value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InsideError(path, "expected a list of package names")
    out = []
    for index, name in enumerate(value):
        if not isinstance(name, str) or not PACKAGE_RE.match(name):
            raise InsideError(f"{path}[{index}]", f"{name!r} is not a package name")
        out.append(name)
    return sorted(set(out))


def files(path: str, value, source_hashes: dict | None = None) -> list[dict]:
    """The files of an entry, checked, each with ``sha256`` of its content, sorted by destination."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InsideError(path, "expected a list of files (dicts with dest and content or src)")
    out, seen = [], set()
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(item, dict):
            raise InsideError(where, "expected a dict with dest and content or src")
        unknown = sorted(set(item) - set(FILE_KEYS))
        if unknown:
            raise InsideError(f"{where}.{unknown[0]}", f"unknown key; expected one of {', '.join(FILE_KEYS)}")
        dest = item.get("dest")
        if not isinstance(dest, str) or not dest.startswith("/") or posixpath.normpath(dest) != dest or dest == "/":
            raise InsideError(f"{where}.dest", f"{dest!r} is not an absolute, normalised file path")
        if dest in seen:
            raise InsideError(f"{where}.dest", f"{dest} is listed twice")
        seen.add(dest)
        if ("content" in item) == ("src" in item):
            raise InsideError(where, "give exactly one of content and src")
        if "content" in item:
            if not isinstance(item["content"], str):
                raise InsideError(f"{where}.content", "expected a string")
            sha = hashlib.sha256(item["content"].encode("utf-8")).hexdigest()
        else:
            src = item["src"]
            if not isinstance(src, str) or not src:
                raise InsideError(f"{where}.src", "expected a file name")
            sha = (source_hashes or {}).get(src)
            if sha is None:
                raise InsideError(f"{where}.src", f"no content hash was given for {src}")
        if not isinstance(item.get("no_log", False), bool):
            raise InsideError(f"{where}.no_log", "expected true or false")
        mode = item.get("mode", "0644")
        if not isinstance(mode, str) or not MODE_RE.match(mode):
            raise InsideError(f"{where}.mode", f"{mode!r} is not an octal mode such as '0644' (quote it in YAML)")
        entry = {"dest": dest, "mode": mode.rjust(4, "0"), "sha256": sha}
        for key in ("owner", "group"):
            owner = str(item.get(key, "root"))
            if not OWNER_RE.match(owner):
                raise InsideError(f"{where}.{key}", f"{owner!r} is not a user or group name")
            entry[key] = owner
        out.append(entry)
    return sorted(out, key=lambda entry: entry["dest"])


def secret(item) -> bool:
    """Whether a file of a layout entry is a secret: its content and hash never appear in what a run prints.

    Anything but ``false`` (or no ``no_log`` at all) counts, so a mistyped value hides rather than leaks.
    """
    return isinstance(item, dict) and item.get("no_log", False) not in (False, None)


def redacted(entries):
    """``entries`` (template name -> entry) with the content of every secret file replaced by ``HIDDEN``.

    What is not a string is kept, for the checks to name; the shape is otherwise the same, so a check of the
    layout can be given this instead of the layout itself.
    """
    if not isinstance(entries, dict):
        return entries
    out = {}
    for name, entry in entries.items():
        if isinstance(entry, dict) and isinstance(entry.get("files"), list):
            entry = {**entry, "files": [
                {**item, "content": HIDDEN} if secret(item) and isinstance(item.get("content"), str) else item
                for item in entry["files"]]}
        out[name] = entry
    return out


def applied(path: str, entry: dict, source_hashes: dict | None = None) -> dict:
    """The part of a layout entry that is applied inside the qube, in canonical form."""
    present = _packages(f"{path}.packages", entry.get("packages"))
    absent = _packages(f"{path}.packages_absent", entry.get("packages_absent"))
    both = sorted(set(present) & set(absent))
    if both:
        raise InsideError(f"{path}.packages_absent", f"{both[0]} is also in packages")
    return {"packages": present, "packages_absent": absent,
            "files": files(f"{path}.files", entry.get("files"), source_hashes)}


def printable(applied_part: dict, entry: dict) -> dict:
    """``applied_part`` of ``entry`` as a run may print it: the hash of each secret file hidden."""
    hidden = {item.get("dest") for item in entry.get("files") or [] if secret(item)}
    return {**applied_part, "files": [{**item, "sha256": HIDDEN} if item["dest"] in hidden else item
                                      for item in applied_part["files"]]}


def digest(applied_part: dict) -> str:
    """The feature value that records ``applied_part``; an entry that applies nothing has none ("")."""
    if not any(applied_part.values()):
        return ""
    text = json.dumps({"version": 1, **applied_part}, sort_keys=True, separators=(",", ":"))
    return DIGEST_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()
