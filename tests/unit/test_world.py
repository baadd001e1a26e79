# SPDX-License-Identifier: GPL-3.0-or-later
"""The rehearsal's world: the world file, the hosts file, DNS answers."""

import pytest

from rehearsal import world


def test_the_default_world_is_valid_and_covers_the_reference_destinations():
    destinations = world.load(world.DEFAULT_WORLD)
    named = {d.name: d for d in destinations if d.name}
    assert named["bank.example.com"].ports == (443,)
    assert set(named["svn.example.org"].ports) == {443, 3690}
    assert set(named["mail.example.net"].ports) == {443, 993, 587}
    assert {d.address for d in destinations} >= {"198.51.100.10", "203.0.113.5", "203.0.113.200"}


@pytest.mark.parametrize("text, message", [
    ("{address: 192.0.2.1}", "expected a list"),
    ("- {address: 10.0.0.1, ports: [443]}", "outside the documentation ranges"),
    ("- {address: 192.0.2.1, ports: [0]}", "ports must be"),
    ("- {address: 192.0.2.1, name: Bank.example.com}", "invalid hostname"),
    ("- {address: 192.0.2.1, name: 192.0.2.2}", "is an address"),
    ("- {address: 192.0.2.1, port: 443}", "expected a mapping"),
])
def test_a_world_file_is_checked(tmp_path, text, message):
    path = tmp_path / "world.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(world.WorldError, match=message):
        world.load(str(path))


def test_hosts_file_round_trip_and_dns_answers(tmp_path):
    path = str(tmp_path / "hosts")
    world.write_hosts(path, [world.Destination("192.0.2.10", (443,), "bank.example.com"),
                             world.Destination("198.51.100.10", (443,))])
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("192.0.2.11 bank.example.com  # a second address\nnot-an-address other.example.com\n")
    hosts = world.read_hosts(path)
    assert hosts == {"bank.example.com": ["192.0.2.10", "192.0.2.11"]}
    answer = world.dns_answer(world.dns_query("bank.example.com", ident=7), hosts)
    assert answer[:4] == b"\x00\x07\x81\x80" and answer[6:8] == b"\x00\x02"
    assert answer.endswith(bytes([192, 0, 2, 11]))
    unknown = world.dns_answer(world.dns_query("news.example.com"), hosts)
    assert unknown[2:4] == b"\x81\x83" and unknown[6:8] == b"\x00\x00"
    assert world.dns_answer(b"\x00\x01", hosts) is None
