# SPDX-License-Identifier: GPL-3.0-or-later
"""Test double of qrexec-client-vm: relays one call to a rehearsal dom0 socket.

Run as ``python qrexec_relay.py TARGET SERVICE[+ARG]`` (tests wrap it in an
executable named qrexec-client-vm).

It plays qrexec without policy: the call reaches qubesd with the calling qube
as source ($QREXEC_TEST_SOURCE), and services listed in $QREXEC_TEST_REFUSE are
refused the way qrexec refuses them (exit status 126, message on stderr).
"""
import os
import sys

from ansible_collections.corral.qubes.plugins.module_utils.client import SocketTransport

target, service = sys.argv[1], sys.argv[2]
if service.split("+", 1)[0] in os.environ.get("QREXEC_TEST_REFUSE", "").split(","):
    sys.stderr.write("Request refused\n")
    sys.exit(126)
method_arg = service if "+" in service else service + "+"
dest = "keyword adminvm" if target in ("dom0", "@adminvm") else f"name {target}"
header = f"{method_arg} {os.environ['QREXEC_TEST_SOURCE']} {dest}\0".encode()
transport = SocketTransport(os.environ["QREXEC_TEST_SOCKET"])
sys.stdout.buffer.write(transport.exchange_bytes(header + sys.stdin.buffer.read()))
