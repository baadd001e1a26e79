# SPDX-License-Identifier: GPL-3.0-or-later
"""Stand-in for Xen's ``xl`` (only ``xl info``), printing the rehearsal host profile (``$REHEARSAL_HOST``).

Run as ``rehearsal/bin/xl info``.  Free memory is the host's memory less dom0's share.
"""

from __future__ import annotations

import sys

from rehearsal import hardware


def main(argv: list[str]) -> int:
    """``xl info``; anything else is refused as xl does for a command it does not know."""
    if argv[:1] != ["info"]:
        sys.stderr.write(f"xl: command not implemented by the rehearsal stand-in: {' '.join(argv) or '(none)'}\n")
        return 1
    try:
        host = hardware.profile()
    except ValueError as exc:
        sys.stderr.write(f"xl: {exc}\n")
        return 1
    sys.stdout.write(hardware.xl_info(host, host["memory_mib"] - 130 - hardware.DOM0_MEMORY_MIB))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
