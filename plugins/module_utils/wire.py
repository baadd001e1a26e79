# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Qubes Admin API wire format, shared by the client and the rehearsal dom0.

One request per connection::

    <method>+<arg> SP <source> SP <dest_type> SP <dest> NUL <payload> EOF

One reply per connection: a type byte and a NUL, then

* ``0``  OK: the content (UTF-8, may be empty);
* ``1``  EVENT: ``subject NUL event NUL (key NUL value NUL)* NUL``, repeated;
* ``2``  EXCEPTION: ``class NUL traceback NUL message NUL``.

An empty reply (zero bytes, connection aborted) means access denied, a protocol
error or an unhandled error inside qubesd.  The exception classes below mirror
the names qubesd sends, so a client can catch them by type and a server can
raise them and have the right name go on the wire.

This module has no Ansible imports: modules, tests and the rehearsal dom0 all
use it.
"""

from __future__ import annotations

import dataclasses

MAX_REQUEST_SIZE = 65536
"""qubesd aborts a request (header plus payload) longer than this."""

REPLY_OK = b"0\x00"
REPLY_EVENT = b"1\x00"
REPLY_EXCEPTION = b"2\x00"

EMPTY_REPLY_MESSAGE = "Got empty response from qubesd. See journalctl in dom0 for details."


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class QubesException(Exception):
    """An error reply from qubesd (or a transport failure, for subclasses).

    ``exc_class`` is the class name qubesd sent: for names this module does
    not know it differs from ``type(self).__name__`` (the object is then a
    plain ``QubesException``).
    """

    def __init__(self, message: str = "", exc_class: str | None = None, traceback: str = ""):
        super().__init__(message)
        self.message = message
        self.exc_class = exc_class or type(self).__name__
        self.traceback = traceback

    def __str__(self) -> str:
        return self.message


# The hierarchy follows qubesd's own, so ``except QubesVMError`` catches the
# same things on both sides.
class QubesVMNotFoundError(QubesException):
    """No such qube."""


class QubesVMInvalidUUIDError(QubesException):
    """Malformed qube UUID."""


class QubesVMError(QubesException):
    """An operation on a qube failed."""


class QubesVMInUseError(QubesVMError):
    """The qube is referenced elsewhere or has running clients."""


class QubesVMNotStartedError(QubesVMError):
    """The qube is not started."""


class QubesVMNotRunningError(QubesVMNotStartedError):
    """The qube is not running."""


class QubesVMNotPausedError(QubesVMNotStartedError):
    """The qube is not paused."""


class QubesVMNotSuspendedError(QubesVMError):
    """The qube is not suspended."""


class QubesVMNotHaltedError(QubesVMError):
    """The qube is not halted."""


class QubesVMShutdownTimeoutError(QubesVMError):
    """The qube did not halt in time."""


class QubesNoTemplateError(QubesVMError):
    """The qube has no template."""


class QubesMemoryError(QubesVMError):
    """Not enough memory to start the qube."""


class QubesPoolInUseError(QubesException):
    """The storage pool still holds volumes."""


class QubesValueError(QubesException):
    """A value was refused."""


class QubesPropertyValueError(QubesValueError):
    """A property value was refused."""


class QubesNoSuchPropertyError(QubesException):
    """No such property."""


class QubesNotImplementedError(QubesException):
    """The operation is not implemented."""


class QubesFeatureNotFoundError(QubesException):
    """The feature is not set."""


class QubesTagNotFoundError(QubesException):
    """The tag is not set."""


class QubesLabelNotFoundError(QubesException):
    """No such label."""


class StoragePoolException(QubesException):
    """A storage operation failed."""


class DeviceNotAssigned(QubesException):
    """The device is not assigned."""


class DeviceAlreadyAttached(QubesException):
    """The device is already attached."""


class DeviceAlreadyAssigned(QubesException):
    """The device is already assigned."""


class UnrecognizedDevice(QubesException):
    """The device is not known."""


class QubesDaemonAccessError(QubesException):
    """qubesd answered with zero bytes: access denied, protocol error, or an
    unhandled error inside qubesd (see its journal)."""

    def __init__(self, message: str = EMPTY_REPLY_MESSAGE, exc_class: str | None = None, traceback: str = ""):
        super().__init__(message, exc_class, traceback)


class QubesDaemonCommunicationError(QubesException):
    """The transport failed: no socket, a refused qrexec call, a malformed reply."""


EXCEPTION_CLASSES: dict[str, type[QubesException]] = {
    cls.__name__: cls
    for cls in (
        QubesException, QubesVMNotFoundError, QubesVMInvalidUUIDError, QubesVMError,
        QubesVMInUseError, QubesVMNotStartedError, QubesVMNotRunningError, QubesVMNotPausedError,
        QubesVMNotSuspendedError, QubesVMNotHaltedError, QubesVMShutdownTimeoutError,
        QubesNoTemplateError, QubesMemoryError, QubesPoolInUseError, QubesValueError,
        QubesPropertyValueError, QubesNoSuchPropertyError, QubesNotImplementedError,
        QubesFeatureNotFoundError, QubesTagNotFoundError, QubesLabelNotFoundError,
        StoragePoolException, DeviceNotAssigned, DeviceAlreadyAttached, DeviceAlreadyAssigned,
        UnrecognizedDevice,
    )
}


def exception_from_reply(exc_class: str, message: str, traceback: str = "") -> QubesException:
    """The typed exception for a class name sent by qubesd (unknown names: QubesException)."""
    cls = EXCEPTION_CLASSES.get(exc_class, QubesException)
    return cls(message, exc_class=exc_class, traceback=traceback)


class FramingError(ValueError):
    """A request that does not follow the framing (qubesd aborts it)."""


# --------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Request:
    """One Admin API request, as framed on the wire."""

    method: str
    arg: str = ""
    dest: str = "dom0"
    payload: bytes = b""
    source: str = "dom0"
    dest_type: str = "name"

    def encode(self) -> bytes:
        """The exact bytes a client sends before half-closing the socket."""
        header = f"{self.method}+{self.arg} {self.source} {self.dest_type} {self.dest}"
        return header.encode("ascii") + b"\x00" + self.payload

    @property
    def call_name(self) -> str:
        """``method+arg`` as qrexec names a service call (no ``+`` without an argument)."""
        return f"{self.method}+{self.arg}" if self.arg else self.method


def parse_request(data: bytes) -> Request:
    """Split raw request bytes the way qubesd does; FramingError if it would abort."""
    if len(data) > MAX_REQUEST_SIZE:
        raise FramingError(f"request of {len(data)} bytes exceeds {MAX_REQUEST_SIZE}")
    header, sep, payload = data.partition(b"\x00")
    if not sep:
        raise FramingError("no NUL after the header")
    try:
        text = header.decode("ascii")
    except UnicodeDecodeError as exc:
        raise FramingError("header is not ASCII") from exc
    fields = text.split(" ", 3)  # the destination keeps any further spaces, as in qubesd
    if len(fields) != 4:
        raise FramingError(f"header has {len(fields)} fields, expected 4")
    method_arg, source, dest_type, dest = fields
    method, _plus, arg = method_arg.partition("+")
    if not method:
        raise FramingError("empty method")
    if dest_type == "keyword" and dest == "adminvm":
        dest_type, dest = "name", "dom0"
    if dest_type != "name":
        raise FramingError(f"unsupported destination type {dest_type!r}")
    return Request(method=method, arg=arg, dest=dest, payload=payload, source=source, dest_type=dest_type)


# --------------------------------------------------------------------------
# Replies
# --------------------------------------------------------------------------


def encode_ok(content: str | bytes = b"") -> bytes:
    """An OK reply carrying ``content``."""
    if isinstance(content, str):
        content = content.encode("utf-8")
    return REPLY_OK + content


def encode_exception(exc_class: str, message: str, traceback: str = "") -> bytes:
    """An EXCEPTION reply as qubesd sends it (no format arguments)."""
    return b"".join((
        REPLY_EXCEPTION,
        exc_class.encode("ascii"), b"\x00",
        traceback.encode("utf-8"), b"\x00",
        message.encode("utf-8"), b"\x00",
    ))


def encode_error(error: QubesException) -> bytes:
    """The EXCEPTION reply for a raised QubesException."""
    return encode_exception(error.exc_class, error.message, error.traceback)


def encode_event(subject: str, event: str, kwargs: dict[str, str] | None = None) -> bytes:
    """One EVENT message of an ``admin.Events`` stream."""
    parts = [REPLY_EVENT, subject.encode("utf-8"), b"\x00", event.encode("utf-8"), b"\x00"]
    for key, value in (kwargs or {}).items():
        parts += [key.encode("utf-8"), b"\x00", str(value).encode("utf-8"), b"\x00"]
    parts.append(b"\x00")
    return b"".join(parts)


def parse_reply(data: bytes) -> bytes:
    """The content of an OK reply; a typed QubesException for anything else."""
    if not data:
        raise QubesDaemonAccessError()
    kind, body = data[:2], data[2:]
    if kind == REPLY_OK:
        return body
    if kind == REPLY_EXCEPTION:
        fields = body.split(b"\x00")
        if len(fields) < 4:
            raise QubesDaemonCommunicationError(f"malformed exception reply: {data[:200]!r}")
        exc_class, traceback, message, *args = fields
        text = message.decode("utf-8", "replace")
        args = [a.decode("utf-8", "replace") for a in args[:-1]]
        if args:
            try:
                text = text % tuple(args)
            except (TypeError, ValueError):
                text = " ".join([text] + args)
        raise exception_from_reply(
            exc_class.decode("ascii", "replace"), text, traceback.decode("utf-8", "replace"))
    if kind == REPLY_EVENT:
        raise QubesDaemonCommunicationError("got an event stream where a single reply was expected")
    raise QubesDaemonCommunicationError(f"malformed reply: {data[:200]!r}")


def parse_events(data: bytes) -> tuple[list[tuple[str, str, dict[str, str]]], bytes]:
    """Split complete EVENT messages off a stream buffer; return them and the rest."""
    events = []
    while data.startswith(REPLY_EVENT):
        fields = data[2:].split(b"\x00")
        # subject, event, then key/value pairs until an empty key ends the message
        if len(fields) < 3:
            break
        subject, event = fields[0], fields[1]
        pos, kwargs, complete = 2, {}, False
        while pos < len(fields) - 1:
            if fields[pos] == b"":
                complete = True
                break
            if pos + 1 >= len(fields) - 1:
                break
            kwargs[fields[pos].decode("utf-8")] = fields[pos + 1].decode("utf-8")
            pos += 2
        if not complete:
            break
        consumed = 2 + sum(len(f) + 1 for f in fields[:pos + 1])
        events.append((subject.decode("utf-8"), event.decode("utf-8"), kwargs))
        data = data[consumed:]
    return events, data
