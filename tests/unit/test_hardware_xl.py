# SPDX-License-Identifier: GPL-3.0-or-later
"""``xl info`` as the hardware check runs it: started at once, read when its fields are needed."""

from __future__ import annotations

import time

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import hardware

FIELDS = "total_memory : 16384\\nnr_cpus : 4\\nthreads_per_core : 2\\nvirt_caps : pv hvm hvm_directio\\n"


def test_fields_once_it_has_run():
    info = hardware.XlInfo(f"printf '{FIELDS}'")
    assert info.fields() == {"total_memory": "16384", "nr_cpus": "4", "threads_per_core": "2",
                             "virt_caps": "pv hvm hvm_directio"}


@pytest.mark.parametrize("command, words", [
    ("sh -c 'echo no privcmd >&2; exit 3'", "failed (exit status 3): no privcmd"),
    ("printf 'total_memory : 1\\n'", "printed no nr_cpus, threads_per_core, virt_caps"),
    ("/nonexistent/xl", "cannot run /nonexistent/xl info"),
])
def test_a_failure_names_what_went_wrong(command, words):
    with pytest.raises(RuntimeError, match=words.replace("(", r"\(").replace(")", r"\)")):
        hardware.XlInfo(command).fields()


def test_it_runs_while_the_caller_reads_and_is_stopped_when_not_wanted():
    started = time.monotonic()
    info = hardware.XlInfo("sh -c 'exec sleep 30'")  # the check appends "info": sh's $0
    assert info.proc.poll() is None  # running, the caller not waiting for it
    info.stop()
    assert info.proc.returncode is not None and time.monotonic() - started < 10


def test_a_command_that_hangs_is_ended_after_the_timeout():
    info = hardware.XlInfo("sh -c 'exec sleep 30'", timeout=0.2)
    with pytest.raises(RuntimeError, match="cannot run sh -c exec sleep 30 info"):
        info.fields()
    assert info.proc.returncode is not None
