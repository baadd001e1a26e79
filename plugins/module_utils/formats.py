# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Text formats of Admin API replies: one parser and one renderer each.

The client parses what qubesd sends; the rehearsal dom0 renders the same
text with the functions here, so both sides agree by construction.
"""

from __future__ import annotations

import dataclasses
import string

PROPERTY_TYPES = ("str", "int", "bool", "vm", "label")

# ---------------------------------------------------------------- properties


@dataclasses.dataclass(frozen=True)
class PropertyValue:
    """A property as ``property.Get`` reports it.

    ``value`` is the text qubesd sent ("" for None / unset); ``native`` gives
    the Python value (int, bool, None or str).
    """

    value: str
    type: str = "str"
    is_default: bool = False

    @property
    def native(self):
        """The value as Python sees it: int, bool, None (empty vm/int) or str."""
        if self.type == "bool":
            return self.value == "True"
        if self.type == "int":
            return int(self.value) if self.value != "" else None
        if self.type in ("vm", "label"):
            return self.value or None
        return self.value

    def render(self) -> str:
        """The ``property.Get`` content for this value."""
        return f"default={self.is_default} type={self.type} {self.value}"


def parse_property(content: str) -> PropertyValue:
    """Parse ``default=<bool> type=<t> <value>`` (property.Get)."""
    default_field, sep1, rest = content.partition(" ")
    type_field, sep2, value = rest.partition(" ")
    if not (sep1 and sep2 and default_field.startswith("default=") and type_field.startswith("type=")):
        raise ValueError(f"malformed property reply: {content!r}")
    is_default = default_field[len("default="):]
    if is_default not in ("True", "False"):
        raise ValueError(f"malformed default flag in property reply: {content!r}")
    return PropertyValue(value=value, type=type_field[len("type="):], is_default=is_default == "True")


def parse_property_default(content: str) -> PropertyValue | None:
    """Parse ``type=<t> <value>`` (property.GetDefault); None when there is no default."""
    if content == "":
        return None
    type_field, sep, value = content.partition(" ")
    if not sep or not type_field.startswith("type="):
        raise ValueError(f"malformed GetDefault reply: {content!r}")
    return PropertyValue(value=value, type=type_field[len("type="):], is_default=True)


def render_property_default(value: PropertyValue | None) -> str:
    """The ``property.GetDefault`` content."""
    if value is None:
        return ""
    return f"type={value.type} {value.value}"


def escape_getall(value: str) -> str:
    """Escape a value for a ``property.GetAll`` line (backslash, newline)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def unescape_getall(value: str) -> str:
    """Undo :func:`escape_getall`."""
    out, i = [], 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append("\n" if nxt == "n" else nxt)
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def parse_property_list_all(content: str) -> dict[str, PropertyValue]:
    """Parse ``property.GetAll``: ``<name> default=.. type=.. <value>`` per line."""
    props: dict[str, PropertyValue] = {}
    for line in parse_lines(content):  # only LF separates lines; values may hold CR and others
        name, sep, rest = line.partition(" ")
        if not sep:
            raise ValueError(f"malformed GetAll line: {line!r}")
        parsed = parse_property(rest)
        props[name] = dataclasses.replace(parsed, value=unescape_getall(parsed.value))
    return props


def render_property_list_all(props: list[tuple[str, PropertyValue]]) -> str:
    """Render ``property.GetAll`` content from (name, value) pairs in order."""
    return "".join(
        f"{name} default={val.is_default} type={val.type} {escape_getall(val.value)}\n"
        for name, val in props
    )


def parse_lines(content: str) -> list[str]:
    """A LF-terminated list reply (property.List, feature.List, tag.List...)."""
    return [line for line in content.split("\n") if line]


def render_lines(items) -> str:
    """Render a LF-terminated list reply."""
    return "".join(f"{item}\n" for item in items)


# ---------------------------------------------------------------- admin.vm.List


@dataclasses.dataclass(frozen=True)
class VmListEntry:
    """One line of ``admin.vm.List`` (``uuid`` is None in the R4.2 form)."""

    name: str
    klass: str
    state: str
    uuid: str | None = None

    def render(self) -> str:
        """The line as qubesd sends it (R4.3 form when a uuid is present)."""
        line = f"{self.name} class={self.klass} state={self.state}"
        if self.uuid is not None:
            line += f" uuid={self.uuid}"
        return line + "\n"


def parse_vm_list(content: str) -> dict[str, VmListEntry]:
    """Parse ``admin.vm.List`` in the R4.2 or the R4.3 form."""
    entries: dict[str, VmListEntry] = {}
    for line in parse_lines(content):
        name, *fields = line.split(" ")
        attrs = {}
        for field in fields:
            key, sep, value = field.partition("=")
            if not sep:
                raise ValueError(f"malformed admin.vm.List line: {line!r}")
            attrs[key] = value
        if "class" not in attrs or "state" not in attrs:
            raise ValueError(f"malformed admin.vm.List line: {line!r}")
        entries[name] = VmListEntry(name, attrs["class"], attrs["state"], attrs.get("uuid"))
    return entries


# ---------------------------------------------------------------- key=value replies


def parse_kv_spaces(content: str) -> dict[str, str]:
    """Parse ``k=v k=v`` on one line (admin.vm.CurrentState)."""
    out = {}
    for field in content.split():
        key, sep, value = field.partition("=")
        if not sep:
            raise ValueError(f"malformed key=value field: {field!r}")
        out[key] = value
    return out


def parse_kv_lines(content: str) -> dict[str, str]:
    """Parse ``k=v`` one per line (volume.Info, pool.Info)."""
    out = {}
    for line in parse_lines(content):
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"malformed key=value line: {line!r}")
        out[key] = value
    return out


def render_kv_lines(items) -> str:
    """Render ``k=v`` lines from (key, value) pairs; None renders empty."""
    return "".join(f"{key}={'' if value is None else value}\n" for key, value in items)


VOLUME_INFO_KEYS = (
    "pool", "vid", "size", "usage", "rw", "source", "path", "save_on_stop",
    "snap_on_start", "revisions_to_keep", "ephemeral", "is_outdated",
)
_VOLUME_INT_KEYS = ("size", "usage", "revisions_to_keep")
_VOLUME_BOOL_KEYS = ("rw", "save_on_stop", "snap_on_start", "ephemeral", "is_outdated")


def parse_volume_info(content: str) -> dict:
    """Parse ``admin.vm.volume.Info`` into typed values (ints, bools, None for empty)."""
    raw = parse_kv_lines(content)
    info: dict = {}
    for key, value in raw.items():
        if value == "":
            info[key] = None
        elif key in _VOLUME_INT_KEYS:
            info[key] = int(value)
        elif key in _VOLUME_BOOL_KEYS:
            info[key] = value == "True"
        else:
            info[key] = value
    return info


def parse_current_state(content: str) -> dict:
    """Parse ``admin.vm.CurrentState`` (ints for the memory and cpu fields)."""
    raw = parse_kv_spaces(content)
    return {key: (value if key == "power_state" else int(value)) for key, value in raw.items()}


# ---------------------------------------------------------------- devices (R4.3)

_DEVICE_KEY_CHARS = set(string.digits + string.ascii_letters + "!#$%&()*+,-./:;<>?@[\\]^_{|}~")
_DEVICE_VALUE_CHARS = _DEVICE_KEY_CHARS | set(string.punctuation + " ")


def render_device_properties(items) -> str:
    """``key='value'`` pairs separated by spaces; a ``'`` in a value is written ``\\'``."""
    return " ".join("{}='{}'".format(key, str(value).replace("'", "\\'")) for key, value in items)


def parse_device_properties(text: str) -> dict[str, str]:
    """Parse a device serialization as qubesd splits it (ValueError where qubesd aborts).

    A value runs from ``='`` to the last ``' `` before the next ``='``; keys and
    values must stay within printable ASCII (keys: no quotes, no space).
    """
    text = text.strip()
    if not text:
        return {}
    key, _sep, rest = text.partition("='")
    keys, values = [key], []
    while "='" in rest:
        chunk, _sep, rest = rest.partition("='")
        value, _sep, key = chunk.rpartition("' ")
        values.append(value)
        keys.append(key)
    if not rest.endswith("'"):
        raise ValueError("device properties: unterminated value")
    values.append(rest[:-1])
    out: dict[str, str] = {}
    for key, value in zip(keys, values):
        value = value.replace("\\'", "'")
        if not key or any(c not in _DEVICE_KEY_CHARS for c in key):
            raise ValueError(f"device properties: invalid name {key!r}")
        if any(c not in _DEVICE_VALUE_CHARS for c in value):
            raise ValueError(f"device properties: invalid characters in {key}")
        if key in out:
            raise ValueError(f"device properties: {key} given twice")
        out[key] = value
    return out


# ---------------------------------------------------------------- sizes

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kb": 1000, "kib": 1024,
    "m": 1024 ** 2, "mb": 1000 ** 2, "mib": 1024 ** 2,
    "g": 1024 ** 3, "gb": 1000 ** 3, "gib": 1024 ** 3,
    "t": 1024 ** 4, "tb": 1000 ** 4, "tib": 1024 ** 4,
}


def parse_size(text) -> int:
    """A size in bytes from ``20GiB``, ``60g`` (binary, as qvm-volume), ``10 GB`` or an int."""
    if isinstance(text, bool):
        raise ValueError("a size must be a number of bytes or a number with a unit such as 20GiB")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("a size cannot be negative")
        return text
    cleaned = str(text).strip().replace(" ", "").lower()
    digits = cleaned.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = cleaned[len(digits):]
    if unit not in _SIZE_UNITS or not digits:
        raise ValueError(f"cannot read {text!r} as a size: use bytes or a unit such as 20GiB, 512MiB, 60g")
    try:
        number = float(digits)
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a size: use bytes or a unit such as 20GiB, 512MiB, 60g") from None
    if number < 0:
        raise ValueError("a size cannot be negative")
    return int(number * _SIZE_UNITS[unit])
