# SPDX-License-Identifier: GPL-3.0-or-later
"""A world with one distribution repository: a host of the rehearsal's world serving a flat apt repository that
holds the package corral-hello (for tests of packages through the updates proxy)."""

from __future__ import annotations

import pathlib

from rehearsal.debrepo import build_package, write_repository

REPO_HOST, REPO_ADDRESS = "deb.example.org", "192.0.2.80"
SOURCES = f"deb [trusted=yes] http://{REPO_HOST}/ ./"
"""A flat repository without signatures: trusted=yes, as a local test repository is (Qubes' are signed)."""
GREETING = "/usr/share/corral-hello/greeting"


def hello_world(tmp_path: pathlib.Path, greeting: bytes) -> pathlib.Path:
    """The world file (for serve --world) whose REPO_HOST serves corral-hello 1.0, which installs ``greeting``."""
    work = tmp_path / "debs"
    work.mkdir()
    deb = build_package(work, "corral-hello", "1.0", {GREETING: greeting})
    write_repository(tmp_path / "repo", [deb])
    world = tmp_path / "world.yml"
    world.write_text(f"- {{name: {REPO_HOST}, address: {REPO_ADDRESS}, ports: [80], http: repo}}\n", encoding="utf-8")
    return world
