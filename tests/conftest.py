# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest setup."""

import pathlib
import sys

from hypothesis import HealthCheck, settings

ROOT = pathlib.Path(__file__).resolve().parent.parent

try:
    import ansible_collections.corral.qubes.plugins.module_utils.wire  # noqa: F401  pylint: disable=unused-import
except ImportError as exc:  # pragma: no cover - a setup problem, not a test result
    raise SystemExit(
        "ansible_collections.corral.qubes is not importable: run the tests through `make test` "
        "(or `make setup` first), which links the checkout into .collections/") from exc

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Property tests run in CI on slow, cold machines: no wall-clock deadline or generation-speed
# checks (they measure the machine, not the code), and no example database left in the tree.
settings.register_profile("corral", deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("corral")
