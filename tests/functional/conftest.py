# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures: a real rehearsal dom0 process on a real Unix socket, per test."""

from __future__ import annotations

import pytest

from harness import RehearsalDom0
from playbook import Player


@pytest.fixture
def dom0_factory(tmp_path):
    """Make rehearsal dom0s (stopped at the end of the test)."""
    made = []

    def make(release: str = "4.3", extra_args=(), name: str = "dom0", state=None, start: bool = True):
        server = RehearsalDom0(tmp_path / f"{name}-{release}", release, extra_args)
        if state is not None:
            state.save(server.state_dir)
        made.append(server)
        return server.start() if start else server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def dom0(dom0_factory):
    """A fresh R4.3 rehearsal dom0."""
    return dom0_factory()


@pytest.fixture
def client(dom0):
    """A client on the fresh R4.3 rehearsal dom0."""
    return dom0.client()


@pytest.fixture
def player(dom0, tmp_path):
    """Runs plays of module tasks with ansible-playbook against the fresh dom0."""
    return Player(dom0, tmp_path)
