# SPDX-License-Identifier: GPL-3.0-or-later
"""benchmarks/compare.py: two trees side by side, each on a dom0 of its own, its worktree removed afterwards."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from playbook import ROOT


def worktrees() -> list[str]:
    listing = subprocess.run(["git", "-C", str(ROOT), "worktree", "list", "--porcelain"], capture_output=True,
                             text=True, check=True).stdout
    return [line.split(" ", 1)[1] for line in listing.splitlines() if line.startswith("worktree ")]


def test_compare_prints_both_trees_against_the_empty_play_and_removes_its_worktree(tmp_path):
    before = worktrees()
    # one read of every qube, by each tree's own collection (a playbook given by its absolute path is the same
    # file for both trees; the inventory is each tree's own)
    reads = tmp_path / "reads.yml"
    reads.write_text(yaml.safe_dump([{"name": "Reads", "hosts": "qubes_admin", "gather_facts": False,
                                      "tasks": [{"name": "Every qube", "corral.qubes.qube_info": {}}]}]))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.compare", "HEAD", "--runs", "2", "--playbook", str(reads)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(rf"-i inventories/t420s {re.escape(str(reads))}: 2 no-ops of each tree, in turns; "
                        r"the empty play \d+\.\d{3} s \(median\)", lines[0]), lines
    figures = r"median (\d+\.\d{3}) s, minimum (\d+\.\d{3}) s, (\d+\.\d\d)x the empty play, (\d+) Admin API calls"
    rows = [re.fullmatch(rf"  (HEAD|this checkout): {figures}", line) for line in lines[1:3]]
    assert all(rows) and [row.group(1) for row in rows] == ["HEAD", "this checkout"], lines
    for row in rows:
        assert float(row.group(3)) <= float(row.group(2)) and float(row.group(4)) > 0
        assert int(row.group(5)) > 0  # each tree's run reads its own dom0
    assert re.fullmatch(r"  this checkout - HEAD: [+-]\d+ ms \(medians\)", lines[3]), lines
    assert worktrees() == before
