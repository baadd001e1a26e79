# SPDX-License-Identifier: GPL-3.0-or-later
"""The state of the rehearsal dom0: qubes, labels, pools, global properties.

Plain data, persisted as one JSON document that is replaced atomically
(temporary file, fsync, rename, directory fsync) after every change, so a
killed server never leaves a half-written state behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import uuid as uuidlib

from ansible_collections.corral.qubes.plugins.module_utils import firewall

STATE_FILE = "qubes.json"
STATE_VERSION = 1

DOM0_UUID = "00000000-0000-0000-0000-000000000000"

STANDARD_LABELS = (
    ("red", "0xcc0000"), ("orange", "0xf57900"), ("yellow", "0xedd400"), ("green", "0x73d216"),
    ("gray", "0x555555"), ("blue", "0x3465a4"), ("purple", "0x75507b"), ("black", "0x000000"),
)

GiB = 1024 ** 3
MiB = 1024 ** 2


@dataclasses.dataclass
class Label:
    """A label: index (1-based, as qubesd numbers them), name, colour ``0xRRGGBB``."""

    index: int
    name: str
    color: str


@dataclasses.dataclass
class Pool:
    """A storage pool: name, driver and its configuration (pool.Info keys)."""

    name: str
    driver: str
    config: dict
    size: int = 0
    usage: int = 0


@dataclasses.dataclass
class Volume:
    """One volume of a qube (volume.Info keys)."""

    name: str
    pool: str
    vid: str
    size: int
    rw: bool = True
    source: str | None = None
    path: str | None = None
    save_on_stop: bool = False
    snap_on_start: bool = False
    revisions_to_keep: int = 0
    ephemeral: bool = False
    usage: int = 0
    revisions: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Qube:
    """One qube.  ``props`` holds only explicitly set properties (native values)."""

    name: str
    klass: str
    qid: int
    uuid: str
    props: dict = dataclasses.field(default_factory=dict)
    features: dict = dataclasses.field(default_factory=dict)
    tags: set = dataclasses.field(default_factory=set)
    firewall: list | None = None
    """Rule lines as qubesd stores them; None: no firewall.xml (accept everything)."""
    volumes: dict = dataclasses.field(default_factory=dict)
    devices: dict = dataclasses.field(default_factory=dict)
    """Device assignments: devclass -> list of {backend, port_id, device_id, mode, options}."""
    attached: dict = dataclasses.field(default_factory=dict)
    """Manual (non-persistent) attachments while running, same shape as ``devices``."""
    notes: str = ""
    power_state: str = "Halted"
    xid: int = -1
    start_time: float | None = None
    dispid: int | None = None
    guest: dict = dataclasses.field(default_factory=dict)
    """What an operating system installed by the rehearsal's HVM installer stand-in left on the root volume
    (:mod:`rehearsal.installer`): ``os``, ``network`` (its own address settings) and the like."""

    @property
    def is_running(self) -> bool:
        """Any state but Halted (qubesd's ``is_running``: started in some way)."""
        return self.power_state not in ("Halted", "Dying", "Crashed", "NA")

    @property
    def is_halted(self) -> bool:
        """Halted."""
        return self.power_state == "Halted"

    def firewall_rules(self) -> list[firewall.Rule]:
        """The current rules (the default accept-all when none were ever set)."""
        if self.firewall is None:
            return list(firewall.DEFAULT_RULES)
        return [firewall.parse_rule(line) for line in self.firewall]


@dataclasses.dataclass
class Dom0State:
    """Everything qubesd would keep in qubes.xml (and a little more)."""

    release: str
    props: dict = dataclasses.field(default_factory=dict)
    labels: list = dataclasses.field(default_factory=list)
    pools: dict = dataclasses.field(default_factory=dict)
    domains: dict = dataclasses.field(default_factory=dict)
    host_memory_mib: int = 16384
    kernels: list = dataclasses.field(default_factory=list)
    pci_devices: dict = dataclasses.field(default_factory=dict)
    """Host PCI devices: port id (e.g. ``00_19.0``) -> description."""

    # -- lookup ---------------------------------------------------------------

    def label(self, key: str) -> Label | None:
        """A label by name, or by index given as a number string."""
        for label in self.labels:
            if label.name == key:
                return label
        if key.isdigit():
            for label in self.labels:
                if label.index == int(key):
                    return label
        return None

    def next_qid(self, max_qid: int) -> int:
        """The smallest unused qid (dom0 has 0)."""
        used = {q.qid for q in self.domains.values()}
        for qid in range(1, max_qid):
            if qid not in used:
                return qid
        raise OverflowError("no free qid")

    @staticmethod
    def new_uuid() -> str:
        """A random UUID for a new qube."""
        return str(uuidlib.uuid4())

    # -- persistence ------------------------------------------------------------

    def to_json(self) -> dict:
        """The state as JSON-able data."""
        def qube(q: Qube) -> dict:
            data = dataclasses.asdict(q)
            data["tags"] = sorted(q.tags)
            return data
        return {
            "version": STATE_VERSION,
            "release": self.release,
            "props": self.props,
            "labels": [dataclasses.asdict(label) for label in self.labels],
            "pools": {name: dataclasses.asdict(pool) for name, pool in self.pools.items()},
            "domains": [qube(q) for q in self.domains.values()],
            "host_memory_mib": self.host_memory_mib,
            "kernels": self.kernels,
            "pci_devices": self.pci_devices,
        }

    @classmethod
    def from_json(cls, data: dict) -> Dom0State:
        """Rebuild the state from :meth:`to_json` data."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported state version {data.get('version')!r}")
        state = cls(
            release=data["release"], props=dict(data["props"]),
            labels=[Label(**label) for label in data["labels"]],
            pools={name: Pool(**pool) for name, pool in data["pools"].items()},
            host_memory_mib=data["host_memory_mib"], kernels=list(data["kernels"]),
            pci_devices=dict(data["pci_devices"]),
        )
        for raw in data["domains"]:
            raw = dict(raw)
            raw["tags"] = set(raw["tags"])
            raw["volumes"] = {name: Volume(**vol) for name, vol in raw["volumes"].items()}
            state.domains[raw["name"]] = Qube(**raw)
        return state

    def save(self, directory: str) -> None:
        """Write the state atomically into ``directory``."""
        os.makedirs(directory, exist_ok=True)
        payload = json.dumps(self.to_json(), indent=1).encode("utf-8")  # keeps insertion order
        fd, tmp = tempfile.mkstemp(prefix=".qubes.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, os.path.join(directory, STATE_FILE))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @classmethod
    def load(cls, directory: str) -> Dom0State | None:
        """The saved state in ``directory``, or None if there is none."""
        path = os.path.join(directory, STATE_FILE)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as fh:
            return cls.from_json(json.load(fh))
