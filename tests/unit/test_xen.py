# SPDX-License-Identifier: GPL-3.0-or-later
"""The Xen backend's readings of xl and the domain configuration it writes (rehearsal/xen.py)."""

from rehearsal import xen

# as the nested Xen host's xl 4.17 printed it
XL_LIST = """Name                                        ID   Mem VCPUs\tState\tTime(s)
Domain-0                                     0  1024     2     r-----     166.6
t1                                           2   200     2     --p---      25.3
t2                                           3   300     1     -b----       2.0
t3                                           4   100     1     ---s--       9.1
"""


def test_xl_list_gives_each_domain_but_dom0_with_its_qubes_power_state():
    domains = xen.xl_list(XL_LIST)
    assert set(domains) == {"t1", "t2", "t3"}
    assert domains["t1"] == {"id": 2, "memory": 200, "vcpus": 2, "state": "Paused"}
    assert domains["t2"]["state"] == "Running"
    assert domains["t3"]["state"] == "Halting"


def test_domain_config_of_a_pvh_qube():
    text = xen.domain_config("work", "683f3611-afa6-4be5-bb0d-5048c842dbc0", "pvh", 200, 400, 2)
    lines = text.splitlines()
    assert 'type = "pvh"' in lines and "memory = 200" in lines and "maxmem = 400" in lines
    assert "vcpus = 2" in lines and f'kernel = "{xen.KERNEL}"' in lines
    assert 'cpuid = "host,rdtscp=0"' in lines
    # maxmem 0 (no balloon) is the initial memory
    assert "maxmem = 200" in xen.domain_config("w", "u", "pv", 200, 0, 1).splitlines()
