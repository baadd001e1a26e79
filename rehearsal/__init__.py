# SPDX-License-Identifier: GPL-3.0-or-later
"""The rehearsal dom0: a stand-in for qubesd that answers like a real dom0.

Run it with ``python -m rehearsal serve --state DIR --socket PATH``; see
docs/rehearsal.md for what it implements and where it differs from qubesd.
"""
