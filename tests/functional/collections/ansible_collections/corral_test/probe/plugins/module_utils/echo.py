# -*- coding: utf-8 -*-
# A collection that exists only for tests/functional/test_in_process.py: a module with a no_log option that
# runs through corral.qubes' in-process base, and a connection plugin named like one into a qube.
# SPDX-License-Identifier: GPL-3.0-or-later
"""A task that puts its secret everywhere in its result: in a message, a nested value, a diff and a warning."""

from __future__ import annotations

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "secret": {"type": "str", "no_log": True, "aliases": ["passphrase"]},
    "fail": {"type": "bool", "default": False},
}


def run(params: dict, check_mode: bool, diff: bool) -> dict:
    """Echo the parameters back (and fail with the secret in the message when asked)."""
    secret = params.get("secret") or ""
    result = {"changed": not check_mode, "said": f"{params['name']} knows {secret}",
              "nested": {"list": [secret, {"deeper": secret}]}, "check_mode": check_mode,
              "warnings": [f"a warning that names the secret {secret}"]}
    if diff:
        result["diff"] = {"before": "", "after": f"secret: {secret}\n"}
    if params["fail"]:
        return {"failed": True, "changed": False, "msg": f"failed holding {secret}"}
    return result
