# SPDX-License-Identifier: GPL-3.0-or-later
"""A file of one qube's root shown in another's, as a block device attached to it appears in Qubes.

Run as a program (``python3 crossmount.py attach ...``), by :class:`rehearsal.roots.Roots`: a
process enters a mount namespace with ``setns``, which a threaded process (the rehearsal) cannot.

``attach BACKEND_INIT SOURCE FRONTEND_INIT TARGET ro|rw``: in the backend's mount namespace,
a copy of the mount that holds ``SOURCE`` is taken (``open_tree`` with ``OPEN_TREE_CLONE``),
bound at that file; in the frontend's mount namespace an empty file ``TARGET`` is made and the
copy is moved onto it (``move_mount``), then made read-only for ``ro``.  A plain bind mount
cannot do it: the kernel refuses to bind a path that lies in another mount namespace.

``detach FRONTEND_INIT TARGET``: in the frontend's mount namespace, unmount ``TARGET`` and remove it.

Exit status 1 with the reason on stderr when a step fails (what was done is undone).
"""

import ctypes
import os
import sys

AT_FDCWD = -100
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
CLONE_NEWNS = 0x20000
MS_RDONLY, MS_REMOUNT, MS_BIND = 0x1, 0x20, 0x1000
MNT_DETACH = 0x2
SYS_OPEN_TREE, SYS_MOVE_MOUNT = 428, 429
"""The same number on every architecture but alpha (system calls from 5.1 on share one table)."""

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long


def _checked(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def enter(init: str) -> None:
    """Move this process into the mount namespace of ``init`` (its root and working directory: the namespace's)."""
    handle = os.open(f"/proc/{init}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _checked(LIBC.setns(handle, CLONE_NEWNS), f"setns into the mount namespace of {init}")
    finally:
        os.close(handle)


def attach(backend_init: str, source: str, frontend_init: str, target: str, mode: str) -> None:
    """Show ``source`` (a path of the backend's namespace) at ``target`` in the frontend's."""
    frontend = os.open(f"/proc/{frontend_init}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    enter(backend_init)
    if not os.path.isfile(source):
        raise OSError(f"{source}: no such file in the backend")
    tree = _checked(LIBC.syscall(SYS_OPEN_TREE, AT_FDCWD, os.fsencode(source), OPEN_TREE_CLONE | os.O_CLOEXEC),
                    f"open_tree {source}")
    _checked(LIBC.setns(frontend, CLONE_NEWNS), "setns into the frontend's mount namespace")
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o660))
    try:
        _checked(LIBC.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, os.fsencode(target), MOVE_MOUNT_F_EMPTY_PATH),
                 f"move_mount onto {target}")
    except OSError:
        os.unlink(target)
        raise
    if mode == "ro":
        try:
            _checked(LIBC.mount(None, os.fsencode(target), None, MS_BIND | MS_REMOUNT | MS_RDONLY, None),
                     f"read-only remount of {target}")
        except OSError:
            detach_here(target)
            raise


def detach_here(target: str) -> None:
    """Unmount ``target`` (in this process's namespace) and remove the file under it."""
    _checked(LIBC.umount2(os.fsencode(target), MNT_DETACH), f"umount {target}")
    os.unlink(target)


def main(argv: list[str]) -> int:
    """The command line (see the module's docstring)."""
    try:
        if argv[:1] == ["attach"] and len(argv) == 6 and argv[5] in ("ro", "rw"):
            attach(*argv[1:])
        elif argv[:1] == ["detach"] and len(argv) == 3:
            enter(argv[1])
            detach_here(argv[2])
        else:
            print("usage: crossmount.py attach BACKEND_INIT SOURCE FRONTEND_INIT TARGET ro|rw | "
                  "detach FRONTEND_INIT TARGET", file=sys.stderr)
            return 2
    except OSError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
