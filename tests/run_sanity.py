# SPDX-License-Identifier: GPL-3.0-or-later
"""Run ``ansible-test sanity`` on the collection, offline-friendly.

ansible-test wants the collection at ``.../ansible_collections/corral/qubes``
and a pip bootstrap script it normally downloads.  This script copies the
files git knows (tracked, and untracked but not ignored) into such a path
in the temporary directory (``$CORRAL_SANITY_DIR`` to choose another), puts a small bootstrap script (ensurepip, then pip from the
configured index) where ansible-test looks for its cached copy, and runs the
sanity tests with ``--venv`` for the Python given by ``--python``.

Extra arguments go to ansible-test (e.g. ``--test pylint``).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Outside the repository: inside it, ansible-test would ask git, which ignores the copy.
WORK = pathlib.Path(os.environ.get("CORRAL_SANITY_DIR") or
                    pathlib.Path(tempfile.gettempdir()) / f"corral-qubes-sanity-{os.getuid()}")
DEST = WORK / "ansible_collections" / "corral" / "qubes"

BOOTSTRAP = '''\
"""pip bootstrap for ansible-test without network access to its usual download.

Installs pip with ensurepip, then asks that pip for the requested version
(from whatever index pip is configured to use).
"""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True,
               stdout=subprocess.DEVNULL)
subprocess.run([sys.executable, "-m", "pip", "install", "--quiet"] + args, check=True)
'''


def pip_version() -> str:
    """The pip version ansible-test pins for its virtual environments."""
    from ansible_test._internal import python_requirements  # pylint: disable=import-outside-toplevel

    class _Python:  # only .version is read
        version = f"{sys.version_info.major}.{sys.version_info.minor}"

    return python_requirements.get_venv_packages(_Python())["pip"]


def install_bootstrap() -> None:
    """Put the bootstrap where ansible-test looks for its cached download."""
    cache = pathlib.Path.home() / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"get_pip_{pip_version().replace('.', '_')}.py"
    if not target.exists() or target.read_text() != BOOTSTRAP:
        target.write_text(BOOTSTRAP)


def copy_collection() -> None:
    """Copy the collection's files (as git sees them) to DEST."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    if DEST.exists():
        shutil.rmtree(DEST)
    for name in filter(None, files):
        src = ROOT / name
        if not src.exists() or src.is_dir():
            continue
        dst = DEST / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=f"{sys.version_info.major}.{sys.version_info.minor}")
    args, rest = parser.parse_known_args()
    install_bootstrap()
    copy_collection()
    ansible_test = pathlib.Path(sys.executable).parent / "ansible-test"
    cmd = [str(ansible_test), "sanity", "--venv", "--python", args.python, "--color", "no", *rest]
    print("+", " ".join(cmd), f"(in {DEST})", flush=True)
    env = dict(os.environ, ANSIBLE_TEST_PREFER_VENV="1")
    return subprocess.run(cmd, cwd=DEST, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
