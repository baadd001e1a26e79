# SPDX-License-Identifier: GPL-3.0-or-later
"""The base root filesystem of the rehearsal's qubes: a Debian minbase, built once and cached.

``debootstrap --variant=minbase`` of the suite and mirror the machine's
apt sources name (``/etc/apt/sources.list`` and ``sources.list.d``, one-line
or deb822; else bookworm from deb.debian.org), with Python (Ansible's
modules need it) and python3-apt (its apt module), into
``${CORRAL_CACHE:-~/.cache/corral-qubes}/rootfs/<name>``.  The build goes
to a temporary directory that is renamed when complete, under a lock, so
concurrent test workers build it once; a missing or unfinished cache is
rebuilt.

Then the user ``user`` (uid 1000, home ``/home/user``) is added besides
root.  The qubes' agent files are a layer of their own (:mod:`rehearsal.roots`).
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time

CACHE_ENV = "CORRAL_CACHE"
DEFAULT_NAME = "debian-minbase"
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
INCLUDE = ("python3", "python3-apt", "xorriso")
"""xorriso: what a media qube builds install media with (the Windows role's answer-file ISO)."""
DOM0HOST_NAME = "debian-dom0host"
DOM0HOST_INCLUDE = INCLUDE + ("python3-yaml", "python3-pycdlib", "openssh-server", "sudo", "iproute2",
                              "nftables", "conntrack", "procps")
"""The variant of the dom0 host (:mod:`rehearsal.dom0host`): what the rehearsal's Python needs (PyYAML, pycdlib), sshd for
Ansible, sudo (dom0's ``sudo -n xl``), and what the rehearsal's network realisation and qube roots run."""
READY = ".corral-rootfs.json"
"""Written last into a complete root (what it was built from, and when)."""
USER, USER_UID = "user", 1000

VERSION = 3
"""Of what :func:`customise` puts in; a cached root of another version is built again."""


class BuildError(RuntimeError):
    """The root filesystem could not be built (the message says what failed)."""


def cache_root() -> str:
    """``$CORRAL_CACHE`` or ``~/.cache/corral-qubes``."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "corral-qubes")


def path(name: str = DEFAULT_NAME) -> str:
    """Where the root filesystem ``name`` lives (built or not)."""
    return os.path.join(cache_root(), "rootfs", name)


def ready(name: str = DEFAULT_NAME, include: tuple[str, ...] | None = None) -> bool:
    """Whether a complete root filesystem of this version (and, if given, this package list) is cached."""
    try:
        with open(os.path.join(path(name), READY), encoding="utf-8") as handle:
            built = json.load(handle)
        return built.get("version") == VERSION and (include is None or built.get("include") == list(include))
    except (OSError, ValueError, AttributeError):
        return False


# -- the machine's apt sources --------------------------------------------------------------------

def _deb822_stanzas(text: str) -> list[dict]:
    stanzas, current, key = [], {}, None
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key:
            current[key] += " " + line.strip()
        elif ":" in line:
            key, _sep, value = line.partition(":")
            key = key.strip().lower()
            current[key] = value.strip()
    return stanzas


def _one_line(text: str) -> list[tuple[str, str]]:
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 2:
            found.append((words[0], words[1]))
    return found


def _candidates(etc: str) -> list[tuple[str, str]]:
    """(mirror, suite) pairs of the enabled ``deb`` sources, in apt's reading order."""
    pairs = []
    main = os.path.join(etc, "sources.list")
    files = ([main] if os.path.isfile(main) else []) + sorted(glob.glob(os.path.join(etc, "sources.list.d", "*")))
    for name in files:
        try:
            with open(name, encoding="utf-8") as handle:
                text = handle.read()
        except OSError:
            continue
        if name.endswith(".sources"):
            for stanza in _deb822_stanzas(text):
                if "deb" not in stanza.get("types", "").split() or stanza.get("enabled", "yes").lower() == "no":
                    continue
                for uri in stanza.get("uris", "").split():
                    pairs += [(uri, suite) for suite in stanza.get("suites", "").split()]
        elif name.endswith(".list"):
            pairs += _one_line(text)
    return pairs


def apt_source(etc: str = "/etc/apt") -> tuple[str, str]:
    """(suite, mirror) of the machine's Debian archive: the first source with a release suite.

    A release suite is a plain code name (``bookworm``), not ``-updates`` or
    ``-security``; a mirror is one whose suite has a ``Release`` on a Debian
    path (its URI ends in ``/debian``).
    """
    for uri, suite in _candidates(etc):
        if "-" not in suite and "/" not in suite and uri.rstrip("/").endswith("/debian"):
            return suite, uri.rstrip("/")
    return DEFAULT_SUITE, DEFAULT_MIRROR


# -- building -------------------------------------------------------------------------------------

def _mounts_under(directory: str) -> list[str]:
    real = os.path.realpath(directory)
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        points = [line.split()[1].replace("\\040", " ") for line in handle]
    return sorted((p for p in points if p == real or p.startswith(real + "/")), key=len, reverse=True)


def remove_tree(directory: str) -> None:
    """Remove a directory, unmounting first what a killed build left mounted in it (debootstrap's /proc)."""
    for point in _mounts_under(directory):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)


def _run(argv: list[str], log) -> None:
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = proc.stdout.decode("utf-8", "replace").strip().splitlines()[-15:]
        raise BuildError(f"{' '.join(argv)} exited {proc.returncode}:\n" + "\n".join(tail))
    if log is not None:
        log(proc.stdout.decode("utf-8", "replace"))


def customise(root: str) -> None:
    """What a qube's root needs besides Debian: the user and ``/rw``.

    The agent's files (``/etc/qubes-rpc``) are not in the cached root: the
    rehearsal puts them in a layer of their own at each start (``rehearsal/agent``).
    """
    _run(["chroot", root, "useradd", "--create-home", "--uid", str(USER_UID), "--user-group",
          "--shell", "/bin/bash", USER], None)
    os.makedirs(os.path.join(root, "rw"), exist_ok=True)


def build(name: str = DEFAULT_NAME, force: bool = False, log=None, etc: str = "/etc/apt",
          include: tuple[str, ...] = INCLUDE) -> tuple[str, float, bool]:
    """Build (once) and return (path, seconds spent, whether it was built now).

    ``include`` is the variant's package list (debootstrap's ``--include``): the
    qubes' base by default, :data:`DOM0HOST_INCLUDE` for the dom0 host.

    Several processes may call this at once: one builds under the lock, the
    others wait for it and find the cache.
    """
    if shutil.which("debootstrap") is None and not ready(name, include):
        raise BuildError("debootstrap is not installed (apt-get install debootstrap)")
    target = path(name)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    started = time.monotonic()
    with open(os.path.join(parent, f".{name}.lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready(name, include) and not force:
            return target, time.monotonic() - started, False
        for stale in glob.glob(os.path.join(parent, f".{name}.build-*")):
            remove_tree(stale)
        suite, mirror = apt_source(etc)
        temp = tempfile.mkdtemp(prefix=f".{name}.build-", dir=parent)
        try:
            os.chmod(temp, 0o755)
            _run(["debootstrap", "--variant=minbase", f"--include={','.join(include)}", suite, temp, mirror], log)
            customise(temp)
            with open(os.path.join(temp, READY), "w", encoding="utf-8") as handle:
                json.dump({"version": VERSION, "suite": suite, "mirror": mirror, "include": list(include),
                           "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, handle)
            if os.path.exists(target):
                old = tempfile.mkdtemp(prefix=f".{name}.build-old-", dir=parent)
                os.rename(target, os.path.join(old, "root"))
                remove_tree(old)
            os.rename(temp, target)
        except BaseException:
            remove_tree(temp)
            raise
    return target, time.monotonic() - started, True
