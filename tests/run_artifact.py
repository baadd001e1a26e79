# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the Galaxy artifact, check it, install it as a user would and use it.

1. ``ansible-galaxy collection build`` of the checkout.
2. The artifact holds only files git knows and does not ignore (no caches, virtualenvs or build
   output), and nothing in it needs what it leaves out: every Python import is the standard
   library, ansible-core (and its PyYAML and Jinja2) or a file of the artifact itself, and no
   file other than prose refers to the rehearsal dom0's package, the tests or Molecule.
3. A fresh virtualenv of the given Python (``--python``, by default this one) with only
   ansible-core (``--constraints`` pins it) and the rehearsal dom0 installed from ``rehearsal/``
   with pip; the artifact installed with ``ansible-galaxy collection install`` into an empty
   collections path.
4. From that installed copy: the collection playbook ``corral.qubes.site`` (the preflight, the Fedora
   templates, the qubes) with its reference inventory against a fresh rehearsal dom0 (converge, then
   again with no change; the qubes run on real roots where the machine allows, else the Fedora
   templates are made without what goes inside them), and
   ``ansible-doc`` of every plugin and role the artifact holds.

Everything happens in a temporary directory outside the checkout, with no ansible.cfg of the
checkout and no path to it, so only the installed copy can be used.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
PREFIX = "ansible_collections.corral.qubes."
# ansible-core and what it always brings
ALLOWED_TOP = {"ansible", "ansible_collections", "yaml", "jinja2", "__future__"}
# Files of prose: they may speak of the rehearsal dom0 and the tests
PROSE = re.compile(r"(\.md|\.rst|^COPYING|^changelogs/.*)$")
LEFT_OUT = re.compile(r"-m rehearsal|\brehearsal/|(from|import) rehearsal\b|\btests/|\bmolecule\b|\bbenchmarks/")
# Plugin folders without documentation of their own
UNDOCUMENTED = {"module_utils", "action", "doc_fragments", "plugin_utils"}
DOC_TYPES = {"modules": "module", "inventory": "inventory", "filter": "filter", "test": "test",
             "lookup": "lookup", "callback": "callback", "connection": "connection", "become": "become",
             "cache": "cache", "shell": "shell", "strategy": "strategy", "vars": "vars"}


def step(text: str) -> None:
    print(f"== {text}", flush=True)


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, **kwargs)
    if result.returncode:
        sys.exit(f"FAILED ({result.returncode}): {' '.join(map(str, cmd))}\n{result.stdout}\n{result.stderr}")
    return result


def git_files() -> set[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True).stdout.decode()
    return {name for name in out.split("\0") if name and (ROOT / name).is_file()}


def artifact_files(tarball: pathlib.Path) -> dict[str, bytes]:
    with tarfile.open(tarball) as tar:
        return {member.name: tar.extractfile(member).read() for member in tar.getmembers() if member.isfile()}


def check_contents(files: dict[str, bytes]) -> list[str]:
    """What is wrong with the artifact's file list and contents (empty when nothing)."""
    problems = []
    known = git_files()
    for name in sorted(set(files) - {"MANIFEST.json", "FILES.json"} - known):
        problems.append(f"{name}: not a file git knows (ignored or generated), yet in the artifact")
    for name, data in sorted(files.items()):
        if name.endswith(".py"):
            problems += [f"{name}: {p}" for p in import_problems(data.decode(), files)]
        if not PROSE.search(name) and name not in ("MANIFEST.json", "FILES.json"):
            for number, line in enumerate(data.decode(errors="replace").splitlines(), 1):
                code = line.split("#", 1)[0] if name.endswith((".py", ".yml", ".yaml")) else line
                if LEFT_OUT.search(code):
                    problems.append(f"{name}:{number}: refers to what the artifact leaves out: {line.strip()}")
    return problems


def import_problems(source: str, files: dict[str, bytes]) -> list[str]:
    """Imports of a Python file the artifact cannot satisfy."""

    def module(path: str) -> bool:
        return f"{path}.py" in files

    def package(path: str) -> bool:
        return any(name.startswith(f"{path}/") for name in files)

    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            wanted = [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            wanted = [(node.module, [alias.name for alias in node.names])]
        else:
            continue
        for name, members in wanted:
            top = name.split(".")[0]
            if top not in ALLOWED_TOP and top not in sys.stdlib_module_names:
                problems.append(f"imports {name}, which is neither the standard library nor ansible-core")
            if not name.startswith(PREFIX):
                continue
            path = name[len(PREFIX):].replace(".", "/")
            if not (module(path) or package(path)):
                problems.append(f"imports {name}, which the artifact does not hold")
            elif not module(path):  # from a package: each name is a module of it
                problems += [f"imports {name}.{m}, which the artifact does not hold"
                             for m in members if not (module(f"{path}/{m}") or package(f"{path}/{m}"))]
    return problems


def doc_targets(installed: pathlib.Path) -> dict[str, list[str]]:
    """ansible-doc type -> FQCNs of every documented plugin and role in the installed copy."""
    targets: dict[str, list[str]] = {}
    for folder in sorted((installed / "plugins").iterdir()):
        if not folder.is_dir() or folder.name in UNDOCUMENTED:
            continue
        kind = DOC_TYPES.get(folder.name)
        if kind is None:
            sys.exit(f"plugins/{folder.name}: a plugin folder this check does not know")
        # filters and tests are documented by a YAML file each; other plugins in their own file
        suffix = ".yml" if kind in ("filter", "test") else ".py"
        names = sorted(p.stem for p in folder.glob(f"*{suffix}") if p.stem != "__init__")
        targets[kind] = [f"corral.qubes.{name}" for name in names]
    targets["role"] = [f"corral.qubes.{p.parent.parent.name}"
                       for p in sorted((installed / "roles").glob("*/meta/argument_specs.yml"))]
    return targets


RECAP = re.compile(r"^\S+\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def recap(output: str) -> tuple[int, int, int]:
    """(ok, changed, failed+unreachable) of a playbook run's recap."""
    found = RECAP.findall(output)
    if not found:
        sys.exit(f"no play recap in:\n{output}")
    return (sum(int(f[0]) for f in found), sum(int(f[1]) for f in found),
            sum(int(f[2]) + int(f[3]) for f in found))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the Python of the user's virtualenv")
    parser.add_argument("--constraints", default=str(ROOT / "constraints-r43.txt"),
                        help="pins for ansible-core and PyYAML in that virtualenv")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    started = time.monotonic()
    work = pathlib.Path(tempfile.mkdtemp(prefix="corral-artifact-"))
    try:
        step("build the artifact")
        bin_dir = pathlib.Path(sys.executable).parent
        run([bin_dir / "ansible-galaxy", "collection", "build", "--output-path", work / "dist", ROOT])
        tarball = next((work / "dist").glob("corral-qubes-*.tar.gz"))
        files = artifact_files(tarball)
        print(f"   {tarball.name}: {len(files)} files, {tarball.stat().st_size // 1024} KiB")

        step("check what it holds")
        problems = check_contents(files)
        if problems:
            print("\n".join(problems))
            return 1
        print(f"   every file is one git knows; {sum(n.endswith('.py') for n in files)} Python files import only "
              "the standard library, ansible-core and the artifact; nothing refers to what is left out")

        step(f"a fresh virtualenv ({args.python}) with ansible-core and the rehearsal dom0 (pip install ./rehearsal)")
        venv = work / "venv"
        run([args.python, "-m", "venv", venv])
        python = venv / "bin" / "python"
        # the rehearsal is built from a copy: pip's in-tree build would write into the checkout
        shutil.copytree(ROOT / "rehearsal", work / "rehearsal-src",
                        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
        run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-c", args.constraints,
             "ansible-core", work / "rehearsal-src"])
        versions = run([python, "-c", "import sys, ansible; print(sys.version.split()[0], ansible.__version__)"])
        print(f"   Python {versions.stdout.split()[0]}, ansible-core {versions.stdout.split()[1]}")

        step("ansible-galaxy collection install into an empty collections path")
        collections = work / "collections"
        config = work / "ansible.cfg"
        config.write_text("[defaults]\n")
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("ANSIBLE_", "PYTHON", "QUBESD_", "QREXEC_", "REHEARSAL_", "VIRTUAL_ENV"))}
        env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", ANSIBLE_CONFIG=str(config),
                   ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_HOME=str(work / "ansible-home"),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", HOME=str(work / "home"))
        (work / "home").mkdir()
        run([venv / "bin" / "ansible-galaxy", "collection", "install", "--offline", tarball, "-p", collections],
            cwd=work, env=env)
        installed = collections / "ansible_collections" / "corral" / "qubes"
        listed = run([venv / "bin" / "ansible-galaxy", "collection", "list", "corral.qubes", "--format", "json"],
                     cwd=work, env=env)
        paths = json.loads(listed.stdout)
        if list(paths) != [str(collections / "ansible_collections")]:
            sys.exit(f"corral.qubes found elsewhere than the empty path it was installed to: {paths}")
        on_disk = {str(p.relative_to(installed)) for p in installed.rglob("*") if p.is_file()}
        if on_disk != set(files):
            sys.exit(f"installed files differ from the artifact's: {sorted(on_disk ^ set(files))}")
        print(f"   {installed.relative_to(work)}: {len(on_disk)} files")

        step("the installed collection playbook corral.qubes.site on a fresh rehearsal dom0, twice")
        inventory = installed / "inventories" / "t420s"
        play = ["ansible-playbook", "-i", str(inventory), "corral.qubes.site"]
        realised = run([python, "-c", "from rehearsal import network, roots; "
                                      "print(int(not (network.unavailable() + roots.unavailable())))"]).stdout.strip()
        if realised == "1":
            where = ["--network", "on", "--roots", "on"]
        else:  # no qube roots here: the templates and clones, nothing inside them
            reference = yaml.safe_load((inventory / "group_vars" / "qubes_admin" / "fedora.yml").read_text())
            outside = {name: {k: v for k, v in entry.items() if k in ("clone_from", "label")}
                       for name, entry in reference["fedora_templates"].items()}
            (work / "outside.json").write_text(json.dumps({"fedora_templates": outside}))
            where, play = ["--network", "off", "--roots", "off"], [*play, "-e", f"@{work / 'outside.json'}"]
        script = f"{' '.join(play)} && echo '--- again' && {' '.join(play)}"
        result = run([python, "-m", "rehearsal", "run", "--fresh", *where, "--state", work / "state",
                      "--socket", work / "qubesd.sock", "--call-log", work / "calls.jsonl", "--",
                      "sh", "-c", script], cwd=work, env=env)
        first, _sep, second = result.stdout.partition("--- again")
        (ok1, changed1, failed1), (ok2, changed2, failed2) = recap(first), recap(second)
        used = re.findall(r"corral\.qubes\.\w+", first)
        if failed1 or failed2 or not changed1 or changed2:
            print(result.stdout)
            sys.exit(f"expected a converge with changes and a second run without: first changed={changed1} "
                     f"failed={failed1}, second changed={changed2} failed={failed2}")
        calls = len((work / "calls.jsonl").read_text().splitlines())
        print(f"   first run ok={ok1} changed={changed1}, second ok={ok2} changed=0; {calls} Admin API calls; "
              f"qube roots {'on' if realised == '1' else 'off'}; "
              f"used {', '.join(sorted(set(used)))}")

        step("ansible-doc of every plugin and role of the installed copy")
        total = 0
        for kind, names in doc_targets(installed).items():
            if not names:
                continue
            out = run([venv / "bin" / "ansible-doc", "--json", "-t", kind, *names], cwd=work, env=env)
            docs = json.loads(out.stdout)
            for name in names:
                entry = docs.get(name) or {}
                doc = entry.get("doc") or next(iter(entry.get("entry_points", {}).values()), None)
                if not doc or not (doc.get("short_description") or doc.get("description")):
                    sys.exit(f"ansible-doc -t {kind} {name}: no documentation in {sorted(docs)}")
                if str(doc.get("collection", "corral.qubes")) != "corral.qubes":
                    sys.exit(f"ansible-doc -t {kind} {name}: from {doc.get('collection')}")
            doc_paths = {entry.get("doc", {}).get("filename", "") for entry in docs.values()}
            if any(path and not path.startswith(str(installed)) for path in doc_paths):
                sys.exit(f"ansible-doc -t {kind} read files outside the installed copy: {sorted(doc_paths)}")
            total += len(names)
            print(f"   {kind}: {', '.join(n.split('.')[-1] for n in names)}")
        print(f"artifact: 1 built, {total} plugins and roles documented, 2 plays run in "
              f"{time.monotonic() - started:.0f} s")
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
