# SPDX-License-Identifier: GPL-3.0-or-later
"""Side by side: the no-op of one playbook from two trees of this repository, on one machine at one time.

A change of a few tens of milliseconds is smaller than what a shared machine moves from one minute to the
next, so figures from two runs of ``benchmarks/noop.py`` cannot show it. This script checks out a git
revision into a temporary worktree (``git worktree``, removed afterwards), gives each tree a fresh rehearsal
dom0 of its own (both served by this checkout's rehearsal, so that only the collection differs), converges
each once, then runs their no-ops in turns (each tree first in every other round) with the empty play between
them (one debug task, the same inventory), and prints each tree's median and minimum, its ratio to the empty
play, its Admin API calls, and the difference of the medians.

    python -m benchmarks.compare REV [--against REV2] [--runs 10] [--playbook site.yml] [--inventory DIR]

REV is compared against this checkout as it is on disk (its uncommitted changes included), or against REV2.
Nothing is asserted: these are measurements.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from benchmarks.admin_api import ROOT
from benchmarks.noop import Dom0, empty_play, measured


class Tree:
    """One tree of the repository with a dom0 of its own: this checkout, or a worktree of a revision."""

    def __init__(self, directory: str, label: str, root: str):
        self.label = label
        self.root = root
        collections = os.path.join(directory, "collections")
        os.makedirs(os.path.join(collections, "ansible_collections", "corral"))
        os.symlink(root, os.path.join(collections, "ansible_collections", "corral", "qubes"))
        self.env = {"ANSIBLE_COLLECTIONS_PATH": collections, "ANSIBLE_CONFIG": os.path.join(root, "ansible.cfg")}
        os.makedirs(os.path.join(directory, "dom0"))
        self.dom0 = Dom0(os.path.join(directory, "dom0"))

    def run(self, args: list) -> dict:
        """One run of ``ansible-playbook`` from this tree: its seconds, peak memory and calls."""
        return measured(self.dom0, args, self.env, self.root)


def worktree(revision: str, directory: str) -> str:
    """A detached worktree of ``revision`` in ``directory``."""
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "--quiet", directory, revision], check=True)
    return directory


def compare(trees: list[Tree], args: list, empty: list, runs: int) -> None:
    """Converge each tree once, then ``runs`` rounds of: each tree's no-op (the trees in turn first), the empty play
    (on the first tree's dom0); print the figures."""
    for tree in trees:
        tree.run(args)
    noops: dict[str, list] = {tree.label: [] for tree in trees}
    empties = []
    for turn in range(runs):
        for tree in trees if turn % 2 == 0 else trees[::-1]:  # each tree first in every other round
            noops[tree.label].append(tree.run(args))
        empties.append(trees[0].run(empty)["seconds"])
    empty_median = statistics.median(empties)
    print(f"{' '.join(args)}: {runs} no-ops of each tree, in turns; the empty play {empty_median:.3f} s (median)")
    medians = {}
    for tree in trees:
        seconds = [run["seconds"] for run in noops[tree.label]]
        medians[tree.label] = statistics.median(seconds)
        calls = statistics.median(run["calls"] for run in noops[tree.label])
        print(f"  {tree.label}: median {medians[tree.label]:.3f} s, minimum {min(seconds):.3f} s, "
              f"{medians[tree.label] / empty_median:.2f}x the empty play, {calls:.0f} Admin API calls")
    first, second = (tree.label for tree in trees)
    print(f"  {second} - {first}: {(medians[second] - medians[first]) * 1000:+.0f} ms (medians)")


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="the git revision to compare")
    parser.add_argument("--against", help="a second revision (default: this checkout as it is on disk)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--playbook", default="site.yml", help="relative to each tree (or one absolute path)")
    parser.add_argument("--inventory", default=os.path.join("inventories", "t420s"), help="relative to each tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="corral-compare-") as directory:
        made, trees = [], []
        try:
            for index, revision in enumerate([args.revision, args.against]):
                place = os.path.join(directory, f"tree{index}")
                os.makedirs(place)
                if revision is None:
                    root, label = ROOT, "this checkout"
                else:
                    root = worktree(revision, os.path.join(place, "tree"))
                    made.append(root)
                    label = revision if revision != args.revision or index == 0 else f"{revision} (again)"
                trees.append(Tree(place, label, root))
            run_args = ["-i", args.inventory, args.playbook]
            compare(trees, run_args, ["-i", args.inventory, empty_play(directory)], args.runs)
        finally:
            for tree in trees:
                tree.dom0.stop()
            for root in made:
                subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", root], check=False)
                shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
