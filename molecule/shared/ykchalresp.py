# SPDX-License-Identifier: GPL-3.0-or-later
"""The tests' stand-in for a YubiKey in the USB qube (functional tests and the dom0host scenario)."""

YKCHALRESP = """#!/usr/bin/python3
# The tests' stand-in for a YubiKey in sys-usb: ykchalresp -SLOT -x HEX answers HMAC-SHA1 with the slot's secret.
import hashlib, hmac, sys
SLOT, SECRET = {slot!r}, bytes.fromhex({secret!r})
args = sys.argv[1:]
if len(args) != 3 or args[0] != "-" + SLOT or args[1] != "-x":
    sys.exit("ykchalresp: no challenge-response key in that slot")
print(hmac.new(SECRET, bytes.fromhex(args[2]), hashlib.sha1).hexdigest())
"""
