# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmarks that print figures (``make bench``)."""
