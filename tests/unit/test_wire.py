# SPDX-License-Identifier: GPL-3.0-or-later
"""The wire format: request framing, reply parsing, typed errors."""

import pytest
from hypothesis import given, strategies as st

from ansible_collections.corral.qubes.plugins.module_utils import wire


def test_request_bytes_match_qubesadmin_framing():
    assert wire.Request("admin.vm.List").encode() == b"admin.vm.List+ dom0 name dom0\x00"
    assert wire.Request("admin.vm.property.Set", "memory", "t-red", b"800").encode() == \
        b"admin.vm.property.Set+memory dom0 name t-red\x00800"


def test_call_name_has_no_plus_without_argument():
    assert wire.Request("admin.vm.List").call_name == "admin.vm.List"
    assert wire.Request("admin.vm.Shutdown", "force+wait", "work").call_name == "admin.vm.Shutdown+force+wait"


@given(
    method=st.from_regex(r"\Aadmin\.[a-z]+(\.[A-Za-z]+){1,3}\Z"),
    arg=st.from_regex(r"\A[A-Za-z0-9_.+-]{0,20}\Z"),
    dest=st.from_regex(r"\A[a-z][a-z0-9-]{0,20}\Z"),
    payload=st.binary(max_size=200),
)
def test_request_round_trip(method, arg, dest, payload):
    req = wire.Request(method, arg, dest, payload)
    assert wire.parse_request(req.encode()) == req


def test_destination_keeps_further_spaces():
    assert wire.parse_request(b"admin.vm.List+ dom0 name bad name\x00").dest == "bad name"


def test_keyword_adminvm_is_dom0():
    req = wire.parse_request(b"admin.vm.List+ dom0 keyword adminvm\x00")
    assert (req.dest_type, req.dest) == ("name", "dom0")


@pytest.mark.parametrize("data", [
    b"admin.vm.List+ dom0 name dom0",            # no NUL
    b"admin.vm.List+ dom0 name\x00",             # three fields
    b"admin.vm.List+  dom0 name dom0\x00",       # a doubled space shifts the fields
    b"admin.vm.List+ dom0 uuid dom0\x00",        # unknown dest type
    b"+arg dom0 name dom0\x00",                  # no method
    b"admin.vm.List+ d\xc3\xb6m0 name dom0\x00",  # not ASCII
    b"admin.vm.firewall.Set+ dom0 name work\x00" + b"x" * wire.MAX_REQUEST_SIZE,
])
def test_framing_errors(data):
    with pytest.raises(wire.FramingError):
        wire.parse_request(data)


def test_ok_reply():
    assert wire.parse_reply(b"0\x00default=False type=vm sys-firewall") == b"default=False type=vm sys-firewall"
    assert wire.parse_reply(b"0\x00") == b""


def test_exception_reply_is_typed_and_keeps_class_and_message():
    with pytest.raises(wire.QubesVMNotFoundError) as info:
        wire.parse_reply(b"2\x00QubesVMNotFoundError\x00\x00No such domain: 'foo'\x00")
    assert info.value.exc_class == "QubesVMNotFoundError"
    assert str(info.value) == "No such domain: 'foo'"


def test_property_value_error_is_a_value_error():
    with pytest.raises(wire.QubesValueError) as info:
        wire.parse_reply(b"2\x00QubesPropertyValueError\x00\x00Can't set netvm to non-existing qube nosuchvm\x00")
    assert info.value.__class__ is wire.QubesPropertyValueError


def test_unknown_exception_class_falls_back_and_keeps_name():
    with pytest.raises(wire.QubesException) as info:
        wire.parse_reply(b"2\x00QubesSomethingNewError\x00\x00new\x00")
    assert info.value.__class__ is wire.QubesException
    assert info.value.exc_class == "QubesSomethingNewError"


def test_exception_with_empty_message():
    # admin.label.Get of an unknown label (recorded on R4.3)
    with pytest.raises(wire.QubesValueError) as info:
        wire.parse_reply(b"2\x00QubesValueError\x00\x00\x00")
    assert info.value.message == ""


def test_exception_with_format_arguments():
    with pytest.raises(wire.QubesException) as info:
        wire.parse_reply(b"2\x00QubesException\x00\x00Domain %s is %s\x00work\x00busy\x00")
    assert str(info.value) == "Domain work is busy"


def test_empty_reply_is_access_error():
    with pytest.raises(wire.QubesDaemonAccessError) as info:
        wire.parse_reply(b"")
    assert "empty response" in str(info.value)


@pytest.mark.parametrize("data", [b"9\x00what", b"2\x00OnlyClass", b"0"])
def test_malformed_replies(data):
    with pytest.raises(wire.QubesDaemonCommunicationError):
        wire.parse_reply(data)


def test_event_stream_reply_is_refused_as_single_reply():
    with pytest.raises(wire.QubesDaemonCommunicationError):
        wire.parse_reply(b"1\x00\x00connection-established\x00\x00")


def test_encode_exception_matches_qubesd_bytes():
    assert wire.encode_exception("QubesTagNotFoundError", "Tag not set for domain t-red: mytag") == \
        b"2\x00QubesTagNotFoundError\x00\x00Tag not set for domain t-red: mytag\x00"
    err = wire.QubesLabelNotFoundError("Label does not exist: pink")
    assert wire.encode_error(err) == b"2\x00QubesLabelNotFoundError\x00\x00Label does not exist: pink\x00"


def test_events_parse_and_split():
    stream = (wire.encode_event("", "connection-established")
              + wire.encode_event("work", "property-set:netvm", {"name": "netvm", "newvalue": "sys-net"})
              + b"1\x00work\x00domain-sta")
    events, rest = wire.parse_events(stream)
    assert events == [
        ("", "connection-established", {}),
        ("work", "property-set:netvm", {"name": "netvm", "newvalue": "sys-net"}),
    ]
    assert rest == b"1\x00work\x00domain-sta"
    assert wire.encode_event("", "connection-established") == b"1\x00\x00connection-established\x00\x00"
