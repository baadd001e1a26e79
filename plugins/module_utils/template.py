# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Templates installed with ``qvm-template``: read, plan, run.

What is installed is read through the Admin API: a template is *managed*
when its feature ``template-name`` equals its name, and its version is
``template-epoch:template-version-template-release``.  So a run that
changes nothing starts no ``qvm-template``.  What the repositories offer is
known only to ``qvm-template`` (it asks the UpdateVM), so the module runs
one read-only listing (``list --available --machine-readable``) when it
has to install, upgrade or reinstall, and validates every name and
repository with it before the first change.  Changes run ``qvm-template``
with its global options before the subcommand and ``--yes``.

No Ansible imports.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import shutil
import subprocess

from ansible_collections.corral.qubes.plugins.module_utils import engine, names, wire

STATES = ("present", "absent", "latest", "reinstalled")
DEFAULT_TOOL = "qvm-template"
VERSION_FEATURES = ("template-name", "template-epoch", "template-version", "template-release")
ABSENT = "absent"
INSTALLED = "installed"  # reported for a template whose version was not read (versions=false)
STATUSES = ("installed", "available", "extra", "upgradable")
_REPO_ID = re.compile(r"\A[A-Za-z0-9_.*?\[\]!:-]+\Z")
_RELEASEVER = re.compile(r"\A[0-9][0-9.]*\Z")
_UNKNOWN_REPO = re.compile(r"Unknown repo: '([^']*)'")


class ToolError(ValueError):
    """``qvm-template`` exited with an error."""

    def __init__(self, argv: list[str], returncode: int, stderr: str):
        detail = stderr.strip() or "no message"
        super().__init__(f"{' '.join(argv)} exited with status {returncode}: {detail}")
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


# ---------------------------------------------------------------- versions


def _segments(text: str) -> list[str]:
    """rpm's version segments: runs of digits or of letters, and ``~`` (which sorts before anything)."""
    return re.findall(r"~|[0-9]+|[A-Za-z]+", text)


def vercmp(left: str, right: str) -> int:
    """Compare two version or release strings as rpm does: -1, 0 or 1."""
    a, b = _segments(left), _segments(right)
    for index in range(max(len(a), len(b))):
        x = a[index] if index < len(a) else None
        y = b[index] if index < len(b) else None
        if x == y:
            continue
        if x == "~" or y == "~":
            return -1 if x == "~" else 1
        if x is None or y is None:
            return -1 if x is None else 1
        if x.isdigit() != y.isdigit():
            return 1 if x.isdigit() else -1
        if x.isdigit():
            if int(x) == int(y):
                continue  # 01 and 1 are the same number
            return -1 if int(x) < int(y) else 1
        return -1 if x < y else 1
    return 0


@dataclasses.dataclass(frozen=True)
class Version:
    """An epoch, version and release, ordered as rpm orders them."""

    epoch: str
    version: str
    release: str

    @classmethod
    def parse(cls, evr: str) -> Version:
        """``EPOCH:VERSION-RELEASE`` (epoch optional, 0)."""
        epoch, sep, rest = evr.partition(":")
        if not sep:
            epoch, rest = "0", evr
        version, sep, release = rest.rpartition("-")
        if not sep or not version or not release or not epoch.isdigit():
            raise ValueError(f"not an EPOCH:VERSION-RELEASE: {evr!r}")
        return cls(epoch, version, release)

    def __str__(self) -> str:
        return f"{self.epoch}:{self.version}-{self.release}"

    def compare(self, other: Version) -> int:
        """-1, 0 or 1."""
        if int(self.epoch) != int(other.epoch):
            return -1 if int(self.epoch) < int(other.epoch) else 1
        return vercmp(self.version, other.version) or vercmp(self.release, other.release)


# ---------------------------------------------------------------- qvm-template output


@dataclasses.dataclass(frozen=True)
class Listed:
    """One line of ``qvm-template list --machine-readable``."""

    status: str
    name: str
    version: Version
    reponame: str


def parse_list(text: str) -> list[Listed]:
    """``status|name|evr|reponame`` lines."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 4 or fields[0] not in STATUSES:
            raise ValueError(f"line {number} of qvm-template's listing is not status|name|evr|reponame: {line!r}")
        entries.append(Listed(fields[0], fields[1], Version.parse(fields[2]), fields[3]))
    return entries


def parse_list_json(document: dict) -> list[Listed]:
    """``list --machine-readable-json``: status to a list of {name, evr, reponame}."""
    return [Listed(status, item["name"], Version.parse(item["evr"]), item["reponame"])
            for status, items in document.items() for item in items]


INFO_FIELDS = ("status", "name", "epoch", "version", "release", "reponame", "size", "buildtime", "installtime",
               "license", "url", "summary", "description")


def parse_info(text: str) -> list[dict]:
    """``qvm-template info --machine-readable``: 13 fields, the description last (its newlines became ``|``)."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|", len(INFO_FIELDS) - 1)
        if len(fields) != len(INFO_FIELDS):
            raise ValueError(f"qvm-template info line has {len(fields)} fields, not {len(INFO_FIELDS)}: {line!r}")
        entry = dict(zip(INFO_FIELDS, fields))
        entry["description"] = entry["description"].replace("|", "\n")
        entries.append(entry)
    return entries


def latest_available(entries: list[Listed]) -> dict[str, Listed]:
    """The highest version of each name (at equal versions, not from a testing repository)."""
    best: dict[str, Listed] = {}
    for entry in entries:
        if entry.status != "available":
            continue
        held = best.get(entry.name)
        if held is None:
            best[entry.name] = entry
            continue
        order = entry.version.compare(held.version)
        if order > 0 or (order == 0 and "testing" in held.reponame and "testing" not in entry.reponame):
            best[entry.name] = entry
    return best


# ---------------------------------------------------------------- the tool


@dataclasses.dataclass
class Tool:
    """``qvm-template`` with the task's global options; every run recorded in ``runs``."""

    path: str
    enablerepo: list
    releasever: str | None
    updatevm: str | None
    repo_files: list
    socket: str | None = None
    runs: list = dataclasses.field(default_factory=list)
    listings: dict | None = None
    """Listings made earlier in the same task (its check before its changes), by command line: asked once."""

    def global_options(self) -> list[str]:
        """Options that go before the subcommand."""
        argv = [f"--enablerepo={repo}" for repo in self.enablerepo]
        argv += [f"--repo-files={path}" for path in self.repo_files]
        if self.releasever is not None:
            argv.append(f"--releasever={self.releasever}")
        if self.updatevm is not None:
            argv.append(f"--updatevm={self.updatevm}")
        return argv

    def argv(self, subcommand: str, *args: str, yes: bool = False) -> list[str]:
        """The full command line."""
        return [self.path, *self.global_options(), *(["--yes"] if yes else []), subcommand, *args]

    def run(self, subcommand: str, *args: str, yes: bool = False) -> str:
        """Run once; stdout, or :class:`ToolError`."""
        argv = self.argv(subcommand, *args, yes=yes)
        executable = shutil.which(self.path) if os.sep not in self.path else self.path
        if executable is None:
            raise ToolError(argv, 127, f"{self.path} not found: qvm-template runs in dom0 (set qvm_template to its path)")
        env = dict(os.environ)
        if self.socket:
            env["QUBESD_SOCKET"] = self.socket
        self.runs.append(" ".join(argv))
        proc = subprocess.run([executable, *argv[1:]], capture_output=True, text=True, env=env,  # noqa: S603
                              check=False, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise ToolError(argv, proc.returncode, proc.stderr)
        return proc.stdout

    def available(self, all_versions: bool = False) -> list[Listed]:
        """Every template the enabled repositories offer, the latest builds or all (one read-only run)."""
        args = ("list", "--available", *(["--all-versions"] if all_versions else []), "--machine-readable")
        known = " ".join(self.argv(*args))
        if self.listings is not None and known in self.listings:
            return list(self.listings[known])
        try:
            listed = parse_list(self.run(*args))
        except ToolError as exc:
            if "No matching templates to list" not in exc.stderr:
                raise
            listed = []
        if self.listings is not None:
            self.listings[known] = listed
        return listed


# ---------------------------------------------------------------- reading


@dataclasses.dataclass
class Installed:
    """A qube of the wanted name as the Admin API shows it."""

    name: str
    klass: str
    managed: bool
    version: Version | None
    power: str


def read_installed(reader: engine.Reader, name: str, versions: bool = True) -> Installed | None:
    """The qube named ``name`` (None if there is none), with its template-* version features (only
    ``template-name`` without ``versions``: the version is then None)."""
    entry = reader.vms.get(name)
    if entry is None:
        return None
    wanted = VERSION_FEATURES if versions else VERSION_FEATURES[:1]
    features = reader.features(name, only=wanted) if entry.klass == "TemplateVM" else {}
    managed = features.get("template-name") == name
    version = None
    if managed and versions:
        try:
            version = Version(features.get("template-epoch") or "0", features["template-version"],
                              features["template-release"])
        except KeyError:
            version = None
    return Installed(name, entry.klass, managed, version, engine.power_word(entry.state))


# ---------------------------------------------------------------- planning


def _check_params(reader: engine.Reader, params: dict) -> None:
    release = reader.release
    wanted = params.get("names") or []
    if not wanted:
        raise engine.PlanError("names", "name at least one template, e.g. [fedora-42-xfce]")
    seen = set()
    for name in wanted:
        error = names.vm_name_error(name, release) if isinstance(name, str) else "a template name is a string"
        if error:
            raise engine.PlanError("names", f"{name!r} is not a template name: {error}")
        if name in seen:
            raise engine.PlanError("names", f"{name} is listed twice")
        seen.add(name)
    for repo in params.get("enablerepo") or []:
        if not isinstance(repo, str) or not _REPO_ID.match(repo):
            raise engine.PlanError("enablerepo", f"{repo!r} is not a repository id (or glob), "
                                                 "e.g. qubes-templates-community")
    releasever = params.get("releasever")
    if releasever is not None and not _RELEASEVER.match(str(releasever)):
        raise engine.PlanError("releasever", f"{releasever!r} is not a Qubes release such as 4.2 or 4.3")
    updatevm = params.get("updatevm")
    if updatevm:
        if updatevm not in reader.vms:
            raise engine.PlanError("updatevm", f"no qube named {updatevm!r} (the qube that downloads templates; "
                                               "an empty string means dom0 itself)")
    pool = params.get("pool")
    if pool is not None and pool not in reader.pools:
        raise engine.PlanError("pool", f"no storage pool named {pool!r}; pools: {', '.join(reader.pools)}")


def _unknown_name(name: str, offered: dict, enabled: list) -> engine.PlanError:
    close = difflib.get_close_matches(name, sorted(offered), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    repos = ", ".join(["the default repositories"] + list(enabled))
    extra = ""
    if name.startswith("whonix-") and not any("community" in repo for repo in enabled):
        extra = " Whonix templates are in qubes-templates-community: add it to enablerepo."
    return engine.PlanError("names", f"no template named {name!r} in {repos}{hint}{extra}")


def plan(reader: engine.Reader, tool: Tool, params: dict) -> tuple[engine.Plan, dict]:
    """The plan and the version of each name after it (``absent`` when not installed)."""
    _check_params(reader, params)
    state = params["state"]
    wanted = list(params["names"])
    # the version matters to every state but present; there it is only reported, when asked for
    versions = state != "present" or params.get("versions") is not False
    installed = {name: read_installed(reader, name, versions) for name in wanted}
    result = engine.Plan()
    before = {name: _shown(item, versions) for name, item in installed.items()}
    after = dict(before)

    for name, item in installed.items():
        if item is None:
            continue
        if item.klass != "TemplateVM":
            raise engine.PlanError("names", f"{name} is a {item.klass}, not a template: choose another name "
                                            "or remove that qube first")
        if not item.managed and state != "present":
            raise engine.PlanError("names", f"{name} is a template not installed by qvm-template (its feature "
                                            "template-name is not its name), so qvm-template cannot "
                                            f"{'remove' if state == 'absent' else 'upgrade or reinstall'} it")
        if not item.managed:
            result.warnings.append(f"{name} exists but was not installed by qvm-template; left as it is")

    if state == "absent":
        to_remove = [name for name, item in installed.items() if item is not None]
        for name in to_remove:
            users = [user for user in engine.users_of(reader, name) if user.split(" ")[0] not in to_remove]
            if users:
                raise engine.PlanError("names", f"{name} cannot be removed while {', '.join(users)} use it: "
                                                "change or remove those first")
            if installed[name].power != "halted":
                raise engine.PlanError("names", f"{name} is {installed[name].power}: shut it down first")
        if to_remove:
            result.add(f"qvm-template remove {' '.join(to_remove)}",
                       lambda _client: tool.run("remove", *to_remove, yes=True))
            after.update({name: ABSENT for name in to_remove})
        result.before, result.after = _picture(before, after, to_remove)
        return result, after

    missing = [name for name, item in installed.items() if item is None]
    needs_listing = bool(missing) or state in ("latest", "reinstalled")
    offered: dict[str, Listed] = {}
    builds: set = set()
    if needs_listing:
        listed = _listing(tool, params, all_versions=state == "reinstalled")
        offered = latest_available(listed)
        builds = {(entry.name, str(entry.version)) for entry in listed if entry.status == "available"}
        for name in missing:
            if name not in offered:
                raise _unknown_name(name, offered, params.get("enablerepo") or [])
    upgrade, reinstall = [], []
    if state == "latest":
        for name, item in installed.items():
            if item is not None and name in offered and item.version is not None \
                    and offered[name].version.compare(item.version) > 0:
                upgrade.append(name)
    if state == "reinstalled":
        for name, item in installed.items():
            if item is None:
                continue
            if (name, str(item.version)) not in builds:
                # qvm-template reinstall needs the installed version in a repository
                found = str(offered[name].version) if name in offered else "none"
                raise engine.PlanError("names", f"{name}: the installed version {item.version} is not in the "
                                                f"enabled repositories (latest there: {found}); use state=latest")
            reinstall.append(name)
    if missing:
        pool = params.get("pool")
        args = (["--pool", pool] if pool else []) + missing
        result.add(f"qvm-template install {' '.join(missing)}" + (f" (pool {pool})" if pool else ""),
                   lambda _client: tool.run("install", *args, yes=True))
        after.update({name: str(offered[name].version) for name in missing})
    if upgrade:
        result.add(f"qvm-template upgrade {' '.join(upgrade)}", lambda _client: tool.run("upgrade", *upgrade, yes=True))
        after.update({name: str(offered[name].version) for name in upgrade})
    if reinstall:
        result.add(f"qvm-template reinstall {' '.join(reinstall)}",
                   lambda _client: tool.run("reinstall", *reinstall, yes=True))
        after.update({name: f"{before[name]} (reinstalled)" for name in reinstall})
    result.before, result.after = _picture(before, after, missing + upgrade + reinstall)
    return result, after


def _listing(tool: Tool, params: dict, all_versions: bool) -> list[Listed]:
    try:
        return tool.available(all_versions)
    except ToolError as exc:
        unknown = _UNKNOWN_REPO.search(exc.stderr)
        if unknown:
            raise engine.PlanError("enablerepo", f"no repository named {unknown.group(1)!r} is configured in dom0 "
                                                 "(known ones include qubes-templates-itl, -itl-testing, "
                                                 "qubes-templates-community, -community-testing)") from exc
        raise engine.PlanError("enablerepo" if params.get("enablerepo") else "names",
                               f"listing the available templates failed: {exc}") from exc
    except ValueError as exc:
        raise engine.PlanError("names", f"qvm-template's listing was not understood: {exc}") from exc


def _shown(item: Installed | None, versions: bool) -> str:
    """How a template before the run is reported."""
    if item is None:
        return ABSENT
    if not versions and item.managed:
        return INSTALLED
    return str(item.version) if item.version else "unmanaged"


def _picture(before: dict, after: dict, changed: list) -> tuple[dict, dict]:
    return ({name: before[name] for name in changed}, {name: after[name] for name in changed})


def run(reader: engine.Reader, params: dict, check_mode: bool, diff: bool, listings: dict | None = None) -> dict:
    """The template task: plan, run qvm-template unless in check mode, report (``listings``: see :class:`Tool`)."""
    tool = Tool(params.get("qvm_template") or DEFAULT_TOOL, list(params.get("enablerepo") or []),
                None if params.get("releasever") is None else str(params["releasever"]),
                params.get("updatevm"), list(params.get("repo_files") or []), params.get("qubesd_socket"),
                listings=listings)
    try:
        the_plan, versions = plan(reader, tool, params)
    except engine.PlanError as exc:
        return {"failed": True, "changed": False, "msg": str(exc), "field": exc.field, "commands": tool.runs}
    except wire.QubesException as exc:
        return {"failed": True, "changed": False, "commands": tool.runs,
                "msg": f"reading the current state failed: {type(exc).__name__}: {exc}"}
    result: dict = {"changed": the_plan.changed, "actions": the_plan.actions, "templates": versions}
    if the_plan.warnings:
        result["warnings"] = list(the_plan.warnings)
    if diff and the_plan.changed:
        result["diff"] = {"before": the_plan.before, "after": the_plan.after}
    if the_plan.changed and not check_mode:
        try:
            the_plan.apply(reader.client)
        except engine.ApplyError as exc:
            result.update(failed=True, changed=bool(exc.done) or isinstance(exc.error, ToolError), msg=str(exc),
                          actions_done=exc.done)
    result["commands"] = tool.runs
    return result
