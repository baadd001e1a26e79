# SPDX-License-Identifier: GPL-3.0-or-later
"""The rehearsal's stand-in for dom0's ``qvm-template`` (run as ``rehearsal/bin/qvm-template``).

Same command line as the real tool: global options (``--enablerepo``,
``--disablerepo``, ``--repoid``, ``--releasever``, ``--updatevm``,
``--repo-files``, ``--yes``, ...) then a subcommand — ``install``,
``reinstall``, ``upgrade``, ``downgrade``, ``remove``, ``list`` and ``info``
(with ``--machine-readable`` / ``--machine-readable-json``).  Instead of
asking the UpdateVM for RPM packages it reads a local catalogue
(``rehearsal/template_catalogue.yml``, or ``$REHEARSAL_TEMPLATE_CATALOGUE``)
and, instead of unpacking an image, it creates the TemplateVM through the
Admin API of the rehearsal dom0 at ``$QUBESD_SOCKET`` with the calls the
real tool makes (``admin.vm.Create.TemplateVM`` or ``CreateInPool``, the
PostInstall start and shutdown, the ``template-*`` features), through the
collection's client.  Every run is appended to a JSON-lines log
(``$REHEARSAL_TEMPLATE_LOG``, default ``qvm-template.jsonl`` beside the
socket) so tests can count runs.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import os
import pathlib
import sys
import time

import yaml

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod
from ansible_collections.corral.qubes.plugins.module_utils import wire
from ansible_collections.corral.qubes.plugins.module_utils.template import Version

CATALOGUE = pathlib.Path(__file__).resolve().parent / "template_catalogue.yml"
ENV_CATALOGUE = "REHEARSAL_TEMPLATE_CATALOGUE"
ENV_LOG = "REHEARSAL_TEMPLATE_LOG"
PROG = "qvm-template"
DATE_FMT = "%Y-%m-%d %H:%M:%S"
READ_ONLY = ("list", "info", "repolist", "search")
POSTINSTALL_FEATURES = {
    "os": "Linux", "qrexec": "1", "gui": "1", "vmexec": "1",
    "supported-service.meminfo-writer": "1", "supported-service.qubes-firewall": "1",
    "supported-service.network-manager": "1", "supported-service.qubes-updates-proxy": "1",
}
"""What a Linux template requests at its first start (qubes.PostInstall, through qvm-features-request)."""


class Usage(Exception):
    """A command-line error: ``qvm-template: error: ...``, exit status 2, as argparse reports it."""


class Failure(Exception):
    """A runtime error: ``ERROR: ...``, exit status 1, as the real tool's main loop reports it."""


def parser() -> argparse.ArgumentParser:
    """The real tool's command line (the options the rehearsal gives a meaning are marked in the docs)."""
    main = argparse.ArgumentParser(prog=PROG, description="Tool for managing VM templates.")
    main.add_argument("--repo-files", action="append", default=[])
    main.add_argument("--keyring")
    main.add_argument("--updatevm")
    for option in ("--enablerepo", "--disablerepo", "--repoid"):
        main.add_argument(option, action="append", dest="repos", default=[], metavar="REPOID",
                          type=lambda value, op=option[2:]: (op, value))
    main.add_argument("--releasever")
    main.add_argument("--refresh", action="store_true")
    main.add_argument("--cachedir")
    main.add_argument("--keep-cache", action="store_true")
    main.add_argument("--yes", action="store_true")
    main.add_argument("--quiet", "-q", action="store_true")
    sub = main.add_subparsers(dest="command")
    for name in ("install", "reinstall", "downgrade", "upgrade"):
        command = sub.add_parser(name)
        if name == "install":
            command.add_argument("--pool")
        command.add_argument("--allow-pv", action="store_true")
        command.add_argument("--skip-start", action="store_true")
        command.add_argument("--nogpgcheck", action="store_true")
        command.add_argument("--downloaddir", default=".")
        command.add_argument("--retries", type=int, default=5)
        command.add_argument("templates", nargs="*", metavar="TEMPLATESPEC")
    for name in ("list", "info"):
        command = sub.add_parser(name)
        for flag in ("--all", "--installed", "--available", "--extras", "--upgrades", "--all-versions"):
            command.add_argument(flag, action="store_true")
        readable = command.add_mutually_exclusive_group()
        readable.add_argument("--machine-readable", action="store_true")
        readable.add_argument("--machine-readable-json", action="store_true")
        command.add_argument("templates", nargs="*", metavar="TEMPLATESPEC")
    remove = sub.add_parser("remove")
    remove.add_argument("--disassoc", action="store_true")
    remove.add_argument("templates", nargs="*", metavar="TEMPLATE")
    repolist = sub.add_parser("repolist")
    repolist.add_argument("--all", action="store_true")
    repolist.add_argument("--enabled", action="store_true")
    repolist.add_argument("--disabled", action="store_true")
    repolist.add_argument("repos_shown", nargs="*", metavar="REPOS")
    return main


# ---------------------------------------------------------------- catalogue


class Package:
    """One build of a template package."""

    def __init__(self, entry: dict, build: dict, repo: str):
        self.name = entry["name"]
        self.version = Version(str(build.get("epoch", 0)), str(build["version"]), str(build["release"]))
        self.reponame = repo
        self.size = int(entry.get("size", 0))
        self.buildtime = build["buildtime"]
        self.license = entry["license"]
        self.url = entry["url"]
        self.summary = entry["summary"]
        self.description = entry["description"].replace("|", "\n")
        self.features = {key: str(value) for key, value in (entry.get("features") or {}).items()}


def load_catalogue(path=None) -> dict:
    """The catalogue file as data."""
    path = path or os.environ.get(ENV_CATALOGUE) or CATALOGUE
    return yaml.safe_load(pathlib.Path(path).read_text(encoding="utf-8"))


def enabled_repos(catalogue: dict, operations: list) -> list[str]:
    """Repository ids enabled after the default ones and --enablerepo/--disablerepo/--repoid in order."""
    known = list(catalogue["repositories"])
    enabled = [repo for repo, info in catalogue["repositories"].items() if info.get("enabled")]
    if any(op == "repoid" for op, _value in operations):
        enabled = []
        operations = [(op, value) for op, value in operations if op == "repoid"]
    for op, pattern in operations:
        matched = [repo for repo in known if fnmatch.fnmatchcase(repo, pattern)]
        if not matched:
            raise Failure(f"[Qrexec] Error: Unknown repo: '{pattern}'\n"
                          "ERROR: qrexec call 'qubes.TemplateSearch' failed.")
        if op == "disablerepo":
            enabled = [repo for repo in enabled if repo not in matched]
        else:
            enabled += [repo for repo in matched if repo not in enabled]
    return enabled


def query(catalogue: dict, repos: list, releasever: str, spec: str = "*") -> list[Package]:
    """Every build of the enabled repositories for ``releasever`` whose NEVRA forms match ``spec``."""
    found = []
    for entry in catalogue["packages"]:
        if entry["repo"] not in repos:
            continue
        for build in (entry.get("builds") or {}).get(releasever, []):
            package = Package(entry, build, entry["repo"])
            if matches(package.name, package.version, spec):
                found.append(package)
    return found


def matches(name: str, version: Version, spec: str) -> bool:
    """DNF's NEVRA forms (name, name-version, name-version-release, with or without the epoch) against a glob."""
    v, r, e = version.version, version.release, version.epoch
    forms = [f"{name}-{e}:{v}-{r}", name, f"{name}-{e}:{v}"]
    if e == "0":
        forms += [f"{name}-{v}-{r}", f"{name}-{v}"]
    return any(fnmatch.fnmatchcase(form, spec) for form in forms)


def latest(packages: list[Package]) -> dict[str, Package]:
    """The highest build of each name; at equal versions the one not from a testing repository."""
    best: dict[str, Package] = {}
    for package in packages:
        held = best.get(package.name)
        order = 1 if held is None else package.version.compare(held.version)
        if order > 0 or (order == 0 and "testing" in held.reponame and "testing" not in package.reponame):
            best[package.name] = package
    return best


# ---------------------------------------------------------------- the dom0 side


class Dom0:
    """The rehearsal dom0's Admin API, as qubesadmin would use it."""

    def __init__(self, client: client_mod.AdminClient):
        self.client = client
        self.vms = client.list_vms()

    @property
    def release(self) -> str:
        """4.2 when admin.vm.List has no uuids."""
        dom0 = self.vms.get("dom0")
        return "4.2" if dom0 is not None and dom0.uuid is None else "4.3"

    def managed(self) -> dict[str, dict]:
        """Templates whose ``template-name`` is their name, with their template-* features."""
        found = {}
        for name, entry in sorted(self.vms.items()):
            if entry.klass != "TemplateVM":
                continue
            features = {feature: self.client.feature_get(name, feature) for feature in self.client.feature_list(name)
                        if feature.startswith("template-")}
            if features.get("template-name") == name:
                found[name] = features
        return found


def local_version(features: dict) -> Version:
    """The installed version from the template-* features."""
    return Version(features.get("template-epoch", "0"), features["template-version"], features["template-release"])


# ---------------------------------------------------------------- subcommands


def cmd_list(args, dom0: Dom0, catalogue: dict, repos: list, releasever: str, out) -> None:
    """``list`` and ``info``."""
    if not (args.installed or args.available or args.extras or args.upgrades):
        args.all = True
    specs = args.templates or ["*"]
    remote: list[Package] = []
    if args.all or args.available or args.extras or args.upgrades:
        for spec in specs:
            remote += [p for p in query(catalogue, repos, releasever, spec) if p not in remote]
        if not args.all_versions:
            remote = list(latest(remote).values())
    local = dom0.managed()
    rows = []  # (status, data dict)

    def from_local(name, features):
        return {"name": name, "epoch": features.get("template-epoch", "0"),
                "version": features.get("template-version", ""), "release": features.get("template-release", ""),
                "reponame": features.get("template-reponame", ""), "size": "0",
                "buildtime": features.get("template-buildtime", ""),
                "installtime": features.get("template-installtime", ""),
                "license": features.get("template-license", ""), "url": features.get("template-url", ""),
                "summary": features.get("template-summary", ""),
                "description": features.get("template-description", "").replace("|", "\n")}

    def from_remote(package):
        return {"name": package.name, "epoch": package.version.epoch, "version": package.version.version,
                "release": package.version.release, "reponame": package.reponame, "size": str(package.size),
                "buildtime": package.buildtime, "installtime": "", "license": package.license, "url": package.url,
                "summary": package.summary, "description": package.description}

    def wanted_local(name, features):
        return any(matches(name, local_version(features), spec) for spec in specs)

    if args.installed or args.all:
        rows += [("installed", from_local(name, f)) for name, f in local.items() if wanted_local(name, f)]
    if args.available or args.all:
        rows += [("available", from_remote(p)) for p in remote]
    if args.extras:
        names = {p.name for p in remote}
        rows += [("extra", from_local(name, f)) for name, f in local.items()
                 if name not in names and wanted_local(name, f)]
    if args.upgrades:
        rows += [("upgradable", from_remote(p)) for p in remote
                 if p.name in local and local_version(local[p.name]).compare(p.version) < 0]
    if not rows:
        raise Usage("No matching templates to list")
    if args.command == "list":
        rows = [(status, {"name": d["name"], "evr": f"{d['epoch']}:{d['version']}-{d['release']}",
                          "reponame": d["reponame"]}) for status, d in rows]
    grouped: dict[str, list] = {}
    for status, data in rows:
        grouped.setdefault(status, []).append(data)
    if args.machine_readable_json:
        out.write(json.dumps(grouped) + "\n")
    elif args.machine_readable:
        for status, items in grouped.items():
            for data in items:
                if "description" in data:
                    data = dict(data, description=data["description"].replace("\n", "|"))
                out.write("|".join([status, *data.values()]) + "\n")
    else:
        titles = {"installed": "Installed Templates", "available": "Available Templates",
                  "extra": "Extra Templates", "upgradable": "Available Upgrades"}
        for status, items in grouped.items():
            out.write(titles[status] + "\n")
            for data in items:
                if args.command == "list":
                    out.write(f"{data['name']}  {data['evr']}  {data['reponame']}\n")
                else:
                    for key, value in data.items():
                        out.write(f"{key.capitalize():<12}: {value}\n")
                    out.write("\n")


def cmd_install(args, dom0: Dom0, catalogue: dict, repos: list, releasever: str) -> None:
    """``install``, ``reinstall``, ``upgrade`` and ``downgrade``."""
    local = dom0.managed()
    override = args.command != "install"
    chosen: dict[str, Package] = {}
    for spec in args.templates:
        candidates = query(catalogue, repos, releasever, spec)
        picked: dict[str, Package] = {}
        for package in candidates:
            if override:
                if package.name not in dom0.vms:
                    raise Usage(f"Template '{package.name}' not already installed.")
                if package.name not in local:
                    raise Usage(f"Template '{package.name}' is not managed by qvm-template.")
                order = package.version.compare(local_version(local[package.name]))
                wanted = {"reinstall": 0, "upgrade": 1, "downgrade": -1}[args.command]
                if order != wanted:
                    continue
            held = picked.get(package.name)
            if held is None or package.version.compare(held.version) > 0:
                picked[package.name] = package
        if not picked:
            if args.command == "install":
                raise Usage(f"Template '{spec}' not found.")
            if args.command == "reinstall":
                raise Usage(f"Same version of template '{spec}' not found.")
            which = "highest" if args.command == "upgrade" else "lowest"
            print(f"Template '{spec}' of {which} version already installed, skipping...", file=sys.stderr)
        chosen.update(picked)
    for name in list(chosen):
        if not override and name in dom0.vms:
            print(f"Template '{name}' already installed, skipping... (You may want to use the "
                  "{reinstall,upgrade,downgrade} operations.)", file=sys.stderr)
            del chosen[name]
    if override and chosen and not args.yes:
        raise Failure("EOF when reading a line (this would override changes made in "
                      f"{', '.join(chosen)}; give --yes)")
    for name, package in chosen.items():
        print(f"Installing template '{name}'...", file=sys.stderr)
        _install_one(dom0, package, override, getattr(args, "pool", None), args.skip_start)


def _install_one(dom0: Dom0, package: Package, override: bool, pool: str | None, skip_start: bool) -> None:
    """What qvm-template-postprocess post-install and qvm-template do, through the Admin API (no image data)."""
    client, name = dom0.client, package.name
    if name not in dom0.vms:
        client.create("TemplateVM", name, "black", pool=None if override else pool)
    # The real tool now imports root.img into the root volume (admin.vm.volume.Import): no image here.
    if not skip_start:
        client.property_set(name, "netvm", None)
        client.feature_set(name, "qrexec", True)
        client.start(name)
        for feature, value in {**POSTINSTALL_FEATURES, **package.features}.items():
            client.feature_set(name, feature, value)  # qubes.PostInstall's feature requests, as qubesd grants them
        client.shutdown(name, wait=True)
        client.property_reset(name, "netvm")
    now = datetime.datetime.now(datetime.timezone.utc).strftime(DATE_FMT)
    features = {
        "template-name": name, "template-epoch": package.version.epoch, "template-version": package.version.version,
        "template-release": package.version.release, "template-reponame": package.reponame,
        "template-buildtime": package.buildtime, "template-installtime": now,
        "template-license": package.license, "template-url": package.url, "template-summary": package.summary,
        "template-description": package.description.replace("\n", "|"),
    }
    for feature, value in features.items():
        client.feature_set(name, feature, value)


def cmd_remove(args, dom0: Dom0) -> None:
    """``remove``: ``qvm-remove --force`` of each template."""
    for name in args.templates:
        if name not in dom0.vms:
            raise Usage(f"no such domain: '{name}'")
    if not args.yes:
        raise Failure("EOF when reading a line (this will completely remove the selected VM(s); give --yes)")
    for name in args.templates:
        try:
            dom0.client.remove(name)
        except wire.QubesException as exc:
            raise Failure(f"qvm-remove: {name}: {type(exc).__name__}: {exc}") from exc


def cmd_repolist(args, catalogue: dict, repos: list, out) -> None:
    """``repolist``: id, name, enabled or disabled."""
    for repo, info in sorted(catalogue["repositories"].items()):
        state = "enabled" if repo in repos else "disabled"
        if args.all or (args.disabled and state == "disabled") or (not args.disabled and state == "enabled"):
            out.write(f"{repo}  {info.get('name', repo)}  {state}\n")


# ---------------------------------------------------------------- entry point


def _log(argv: list, command: str | None, status: int, started: float) -> None:
    path = os.environ.get(ENV_LOG) or os.path.join(
        os.path.dirname(os.path.abspath(os.environ.get("QUBESD_SOCKET", client_mod.DEFAULT_SOCKET))),
        "qvm-template.jsonl")
    record = {"t": round(time.time(), 6), "argv": argv, "command": command, "status": status,
              "mutating": command not in READ_ONLY, "duration_ms": round((time.monotonic() - started) * 1000, 2)}
    try:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
    except OSError:
        pass


def main(argv: list[str] | None = None, out=None) -> int:
    """Run like qvm-template; the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    started = time.monotonic()
    main_parser = parser()
    args, rest = main_parser.parse_known_args(argv)
    args = main_parser.parse_args(rest, args)  # global options may also follow the subcommand, as in the real tool
    status = 0
    try:
        if not args.command:
            raise Usage("A command needs to be specified.")
        catalogue = load_catalogue()
        dom0 = Dom0(client_mod.AdminClient(client_mod.SocketTransport()))
        releasever = args.releasever or dom0.release
        if args.updatevm and args.updatevm not in dom0.vms:
            raise Failure(f"'{args.updatevm}'")
        if args.command == "remove":
            cmd_remove(args, dom0)
        else:
            repos = enabled_repos(catalogue, args.repos)
            if args.command in ("list", "info"):
                cmd_list(args, dom0, catalogue, repos, releasever, out)
            elif args.command == "repolist":
                cmd_repolist(args, catalogue, repos, out)
            else:
                cmd_install(args, dom0, catalogue, repos, releasever)
    except Usage as exc:
        main_parser.print_usage(sys.stderr)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        status = 2
    except Failure as exc:
        text = str(exc)
        print(text if text.startswith(("[Qrexec]", "ERROR:")) else f"ERROR: {text}", file=sys.stderr)
        status = 1
    except (wire.QubesException, OSError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        status = 1
    _log(argv, args.command, status, started)
    return status


if __name__ == "__main__":
    sys.exit(main())
