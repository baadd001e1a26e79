# SPDX-License-Identifier: GPL-3.0-or-later
"""losetup of the rehearsal's qubes (a stand-in: the qubes share the host's kernel, so they get no loop devices).

What `qvm-start --cdrom=QUBE:PATH` asks of a qube: `losetup -f --show PATH` prints the device that now
backs PATH, which the qube's agent announces to dom0 as a block device. Here the device is a file
/run/corral-rehearsal/loop/loopN holding PATH; the rehearsal dom0 reads it and lists the device as
`QUBE:loopN` (block class). Also: `-j PATH` (the devices of a file), `-a` (all), `-d DEVICE` (detach).
"""

import os
import sys

DIR = "/run/corral-rehearsal/loop"


def devices():
    try:
        names = sorted(os.listdir(DIR), key=lambda n: int(n[4:]) if n[4:].isdigit() else -1)
    except FileNotFoundError:
        return []
    result = []
    for name in names:
        with open(os.path.join(DIR, name), encoding="utf-8") as handle:
            result.append((name, handle.read().strip()))
    return result


def fail(message, status=1):
    print(f"losetup: {message}", file=sys.stderr)
    sys.exit(status)


def main(argv):
    if os.geteuid() != 0:
        fail("cannot find an unused loop device: Permission denied")
    if argv[:1] == ["-a"] and len(argv) == 1:
        for name, path in devices():
            print(f"/dev/{name}: []: ({path})")
        return
    if argv[:1] == ["-j"] and len(argv) == 2:
        wanted = os.path.realpath(argv[1])
        for name, path in devices():
            if path == wanted:
                print(f"/dev/{name}: []: ({path})")
        return
    if argv[:1] == ["-d"] and len(argv) >= 2:
        for device in argv[1:]:
            name = os.path.basename(device)
            try:
                os.unlink(os.path.join(DIR, name))
            except FileNotFoundError:
                fail(f"{device}: detach failed: No such device or address")
        return
    if sorted(argv[:2]) == ["--show", "-f"] and len(argv) == 3:
        path = os.path.realpath(argv[2])
        if not os.path.isfile(path):
            fail(f"{argv[2]}: failed to set up loop device: No such file or directory")
        os.makedirs(DIR, exist_ok=True)
        used = {name for name, _path in devices()}
        number = next(n for n in range(len(used) + 1) if f"loop{n}" not in used)
        with open(os.path.join(DIR, f"loop{number}"), "w", encoding="utf-8") as handle:
            handle.write(path + "\n")
        print(f"/dev/loop{number}")
        return
    fail("this stand-in takes -f --show FILE, -j FILE, -a or -d DEVICE", 2)


if __name__ == "__main__":
    main(sys.argv[1:])
