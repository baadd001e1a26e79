# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Policy files: where they are read and written, and the plan of one file.

Three stores with one interface (``names``, ``read_all``, ``read_for_service``,
``get``, ``replace``, ``remove``):

* :class:`ApiStore` - the policy admin API (``policy.*`` through qrexec):
  every write carries the token of what was read (``new`` when creating),
  so a concurrent edit is detected, and the service validates the whole
  resulting policy once more before its atomic write.
* :class:`Dom0Store` - in dom0, the same writes through the API, but the
  files are read from the policy directory itself (0664 root:qubes, readable
  by dom0's user): a read costs no qrexec call and no run of the admin
  service, and gives the token the API would (the sha256 of the bytes); the
  files that decide a service are found there too (and, on R4.3, in the
  runtime directory), as ``policy.GetFiles`` finds them.
* :class:`DirectoryStore` - a policy directory written directly, for a
  system without that API: the same tokens, computed here, and an atomic
  write (a hidden temporary file, which qrexec skips, fsynced and renamed).

:func:`plan_policy_file` validates the new file and the whole policy it
would make (the grammar of :mod:`policy`) before anything is written.
No Ansible imports.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable

from ansible_collections.corral.qubes.plugins.module_utils import client, engine, policy, policy_client

HEADER = "Managed by corral.qubes (Ansible): edits here are replaced on the next run."
TEMP_PREFIX = ".corral-tmp-"
"""Temporary files start with a dot, so qrexec never reads a half-written one."""
TOP_LEVEL_NAME = re.compile(r"\A[0-9]+-")
"""A top-level file starts with a number that places it among the default files (30-, 50-...)."""
DOM0_POLICY_DIR = "/etc/qubes/policy.d"
POLICY_DIR_ENV = "CORRAL_POLICY_DIR"
"""Where dom0's policy directory is when it is not /etc/qubes/policy.d (a rehearsal dom0's state)."""
DOM0_RUNTIME_POLICY_DIR = "/run/qubes/policy.d"
RUNTIME_POLICY_DIR_ENV = "CORRAL_RUNTIME_POLICY_DIR"
"""Where R4.3's runtime policy directory is when it is not /run/qubes/policy.d (a rehearsal dom0's state)."""


def read_file(directory: str, path: str) -> tuple[str, str] | None:
    """One policy file of ``directory`` as (token, text), the token the policy admin API gives; None if absent."""
    try:
        with open(os.path.join(directory, path), "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    return token_of(data), data.decode("utf-8", "replace")


def policy_names(directory: str) -> list[str]:
    """The top-level ``*.policy`` files of ``directory``, without ``.policy`` (what ``policy.List`` lists)."""
    return sorted(entry[:-len(".policy")] for entry in os.listdir(directory)
                  if entry.endswith(".policy") and not entry.startswith(".")
                  and os.path.isfile(os.path.join(directory, entry)))


def token_of(data: bytes) -> str:
    """The policy admin API's token of a file's bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def token_mismatch(name: str, current: bytes | None, token: str) -> str | None:
    """Why a write with ``token`` must be refused for a file now holding ``current`` (None: absent), or None.

    ``any`` always passes, ``new`` only for an absent file, ``sha256:HEX``
    only for exactly the bytes it was computed from (the policy admin API's rule).
    """
    if token == "any":
        return None
    if token == "new":
        return None if current is None else f"Token mismatch: {name} already exists (token 'new')"
    if not token.startswith("sha256:"):
        return f"Invalid token {token!r}: expected sha256:HEX, new or any"
    if current is None:
        return f"Token mismatch: {name} does not exist"
    return None if token_of(current) == token else f"Token mismatch: {name} changed since it was read"


def write_atomically(full: str, data: bytes, before_rename: Callable[[], None] | None = None) -> None:
    """Replace ``full`` with ``data`` (mode 0664): a hidden temporary file, fsynced, renamed, directory fsynced.

    Whatever happens, the file is either the old one or the new one; a
    temporary file is removed unless the process itself dies.
    ``before_rename`` runs between the write and the rename (fault injection).
    """
    folder = os.path.dirname(full)
    os.makedirs(folder, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o664)
        if before_rename is not None:
            before_rename()
        os.rename(temporary, full)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _sync_directory(folder)


def remove_durably(full: str) -> None:
    """Remove ``full`` and make the removal durable (directory fsync)."""
    os.unlink(full)
    _sync_directory(os.path.dirname(full))


def source_path(name: str) -> str:
    """The path of an API name relative to the policy directory."""
    return policy.file_path(name)


class ApiStore:
    """Policy files through the policy admin API."""

    def __init__(self, admin: policy_client.PolicyAdmin | None = None):
        self.admin = admin or policy_client.PolicyAdmin()
        self.calls = 0

    def _count(self, result):
        self.calls += 1
        return result

    def get(self, name: str) -> tuple[str, str] | None:
        """One file's (token, text), None if it does not exist."""
        try:
            if name.startswith(policy.INCLUDE_DIR + "/"):
                return self._count(self.admin.include_get(name.split("/", 1)[1]))
            return self._count(self.admin.get(name))
        except policy_client.PolicyNotFound:
            return None

    def names(self) -> list[str]:
        """The top-level files' names, without ``.policy`` (``policy.List``)."""
        return self._count(self.admin.list())

    def read_all(self) -> dict[str, tuple[str, str]]:
        """Every file: relative path -> (token, text)."""
        files = {}
        for name in self.names():
            files[source_path(name)] = self._count(self.admin.get(name))
        for name in self._count(self.admin.include_list()):
            files[source_path(f"{policy.INCLUDE_DIR}/{name}")] = self._count(self.admin.include_get(name))
        return files

    def read_for_service(self, service: str) -> dict[str, tuple[str, str]]:
        """The files that decide calls of ``service``: relative path -> (token, text).

        ``policy.GetFiles`` names the files with rules for it (or for ``*``),
        and only those are read; when one of them includes other files, every
        file is read, so that the includes resolve as qrexec resolves them.
        """
        files = {source_path(name): self._service_file(name) for name in self._count(self.admin.get_files(service))}
        if any(line.lstrip().startswith("!include") for _token, text in files.values() for line in text.splitlines()):
            return self.read_all()
        return files

    def _service_file(self, name: str) -> tuple[str, str]:
        """A file ``policy.GetFiles`` named."""
        return self._count(self.admin.get(name))

    def replace(self, name: str, text: str, token: str) -> None:
        """Write one file if it still matches ``token``."""
        if name.startswith(policy.INCLUDE_DIR + "/"):
            self._count(self.admin.include_replace(name.split("/", 1)[1], text, token))
        else:
            self._count(self.admin.replace(name, text, token))

    def remove(self, name: str, token: str) -> None:
        """Remove one file if it still matches ``token``."""
        if name.startswith(policy.INCLUDE_DIR + "/"):
            self._count(self.admin.include_remove(name.split("/", 1)[1], token))
        else:
            self._count(self.admin.remove(name, token))


class Dom0Store(ApiStore):
    """In dom0: the policy directory read directly, written through the policy admin API.

    A policy admin call is a qrexec call that runs the admin service; a no-op
    run only reads, so here it reads the files themselves (what the service
    would read), and a write still goes through the service with the token
    of what was read. A file this user cannot read is asked for through the
    API instead.
    """

    def __init__(self, directory: str, admin: policy_client.PolicyAdmin | None = None, release: str | None = None,
                 runtime_directory: str | None = None):
        super().__init__(admin)
        self.directory = directory
        self.release = release
        """The dom0's release, which says which directories qrexec reads; None: the service names the files."""
        self.runtime_directory = runtime_directory
        """R4.3's runtime policy directory (/run/qubes/policy.d); not read on R4.2."""

    def names(self) -> list[str]:
        """The top-level ``*.policy`` files' names, from the directory."""
        return policy_names(self.directory)

    def get(self, name: str) -> tuple[str, str] | None:
        """One file's (token, text), None if it does not exist."""
        try:
            found = read_file(self.directory, source_path(name))
        except PermissionError:
            return super().get(name)
        self.calls += 1
        return found

    def read_all(self) -> dict[str, tuple[str, str]]:
        """Every top-level ``.policy`` file and every file under ``include/``."""
        files = {}
        for name in self.names():
            files[source_path(name)] = self.get(name)
        include = os.path.join(self.directory, policy.INCLUDE_DIR)
        for entry in sorted(os.listdir(include)) if os.path.isdir(include) else ():
            if not entry.startswith(".") and os.path.isfile(os.path.join(include, entry)):
                files[source_path(f"{policy.INCLUDE_DIR}/{entry}")] = self.get(f"{policy.INCLUDE_DIR}/{entry}")
        return {path: found for path, found in files.items() if found is not None}

    def read_for_service(self, service: str) -> dict[str, tuple[str, str]]:
        """The files that decide calls of ``service``, found here as the service finds them, without asking it.

        qrexec reads the policy directory and, on R4.3, the top-level files of
        the runtime directory (merged by name, the runtime copy winning). Every
        file is read and the whole policy parsed (the grammar of :mod:`policy`);
        the files with rules for ``service`` (or ``*``) are those
        ``policy.GetFiles`` names, and when one of them includes others every
        file is returned, as the API store does. The service is asked instead
        when the release is not known, the runtime directory cannot be read, or
        one of its files includes others (R4.3 resolves those against
        /run/qubes/policy.d).
        """
        if self.release is None:
            return super().read_for_service(service)
        runtime: dict[str, tuple[str, str]] = {}
        if self.release != "4.2" and self.runtime_directory:
            try:
                texts = policy.read_runtime(self.runtime_directory)
            except OSError:
                return super().read_for_service(service)
            if any(policy.includes(text) for text in texts.values()):
                return super().read_for_service(service)
            runtime = {path: (token_of(text.encode("utf-8")), text) for path, text in texts.items()}
            self.calls += len(runtime)
        files = policy.with_runtime(self.read_all(), runtime)
        directories = [policy.INCLUDE_DIR] if os.path.isdir(os.path.join(self.directory, policy.INCLUDE_DIR)) else []
        try:
            wanted = policy.Policy({path: text for path, (_token, text) in files.items()},
                                   directories).files_for_service(service)
        except policy.PolicyError as exc:
            raise policy_client.PolicyInvalid(f"Invalid policy: {exc}", policy_client.EXIT_USER_ERROR) from None
        selected = {source_path(name): files[source_path(name)] for name in wanted}
        if any(policy.includes(text) for _token, text in selected.values()):
            return files
        return selected

    def _service_file(self, name: str) -> tuple[str, str]:
        """A file ``policy.GetFiles`` named, read here; one only the service knows (R4.3 also loads
        /run/qubes/policy.d) through it."""
        found = self.get(name)
        return found if found is not None else super()._service_file(name)


def default_store(release: str | None = None) -> ApiStore:
    """The policy admin API, read from the directory itself in dom0 ($CORRAL_POLICY_DIR or /etc/qubes/policy.d;
    with the dom0's ``release``, the files for a service are found there too, on R4.3 with those of
    $CORRAL_RUNTIME_POLICY_DIR or /run/qubes/policy.d)."""
    directory = os.environ.get(POLICY_DIR_ENV) or DOM0_POLICY_DIR
    if not client.in_qube() and os.path.isdir(directory) and os.access(directory, os.R_OK | os.X_OK):
        return Dom0Store(directory, release=release,
                         runtime_directory=os.environ.get(RUNTIME_POLICY_DIR_ENV) or DOM0_RUNTIME_POLICY_DIR)
    return ApiStore()


class DirectoryStore:
    """Policy files in a directory, written atomically (where the policy admin API is absent)."""

    def __init__(self, directory: str):
        self.directory = directory
        self.calls = 0

    def read_all(self) -> dict[str, tuple[str, str]]:
        """Every file: relative path -> (token, text)."""
        if not os.path.isdir(self.directory):
            raise policy_client.PolicyAdminError(f"policy directory {self.directory} does not exist")
        sources, _dirs = policy.read_directory(self.directory)
        return {path: read_file(self.directory, path) for path in sources}  # bytes, for the tokens

    def names(self) -> list[str]:
        """The top-level ``*.policy`` files' names."""
        return policy_names(self.directory)

    def read_for_service(self, _service: str) -> dict[str, tuple[str, str]]:
        """Every file (a directory is read whole; a file is cheap to read here)."""
        return self.read_all()

    def get(self, name: str) -> tuple[str, str] | None:
        """One file's (token, text), None if it does not exist."""
        self.calls += 1
        return read_file(self.directory, source_path(name))

    def _check_token(self, path: str, token: str) -> None:
        try:
            with open(os.path.join(self.directory, path), "rb") as handle:
                current = handle.read()
        except FileNotFoundError:
            current = None
        problem = token_mismatch(path, current, token)
        if problem:
            raise policy_client.PolicyTokenMismatch(problem)

    def replace(self, name: str, text: str, token: str) -> None:
        """Write one file atomically if it still matches ``token``."""
        path = source_path(name)
        self._check_token(path, token)
        write_atomically(os.path.join(self.directory, path), text.encode("utf-8"))

    def remove(self, name: str, token: str) -> None:
        """Remove one file if it still matches ``token``."""
        path = source_path(name)
        self._check_token(path, token)
        remove_durably(os.path.join(self.directory, path))


def _sync_directory(folder: str) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def render_file(rules: list, header: str | None) -> str:
    """A policy file's text from rules, after a comment header."""
    lines = [f"# {line}".rstrip() for line in (header or "").splitlines()]
    return "".join(line + "\n" for line in lines) + policy.render(rules)


def wanted_text(params: dict) -> str | None:
    """The file the task asks for (None for state absent); PlanError naming the field if invalid."""
    name = params["name"]
    try:
        policy.validate_name(name)
    except policy.PolicyError as exc:
        raise engine.PlanError("name", exc.message) from exc
    if not name.startswith(policy.INCLUDE_DIR + "/") and not TOP_LEVEL_NAME.match(name):
        raise engine.PlanError("name", f"{name!r}: start a policy file's name with a number that orders it among "
                                       "the others, like 30-corral-clipboard (before 50-config-* and 90-default)")
    if params.get("state") == "absent":
        if params.get("rules") is not None or params.get("content") is not None:
            raise engine.PlanError("state", "state absent takes neither rules nor content")
        return None
    if (params.get("rules") is None) == (params.get("content") is None):
        raise engine.PlanError("rules", "give either rules (a list of rule dicts) or content (the file's text)")
    if params.get("content") is not None:
        text = params["content"]
        if text and not text.endswith("\n"):
            text += "\n"
        try:
            policy.validate(text, source_path(name))
        except policy.PolicyError as exc:
            if not (name.startswith(policy.INCLUDE_DIR + "/") and _valid_old_format(text, source_path(name))):
                raise engine.PlanError("content", str(exc)) from exc
        return text
    rules = []
    for index, item in enumerate(params["rules"]):
        try:
            rules.append(policy.rule_from_dict(item, index))
        except policy.PolicyError as exc:
            raise engine.PlanError(f"rules[{index}].{exc.field}", exc.message) from exc
    return render_file(rules, params.get("header", HEADER))


def _valid_old_format(text: str, path: str) -> bool:
    """Whether an include file is valid in the old format ``!include-service`` reads (SOURCE TARGET ACTION).

    Which format applies is decided by how other files include it, which
    the whole-policy validation then checks.
    """
    try:
        policy.validate(text, path, fmt="service")
    except policy.PolicyError:
        return False
    return True


def plan_policy_file(store, params: dict) -> tuple[engine.Plan, str | None]:
    """Plan one policy file: (plan, text after). The whole resulting policy is validated first."""
    name = params["name"]
    text = wanted_text(params)
    path = source_path(name)
    plan = engine.Plan()
    found = store.get(name)
    if text == (found[1] if found else None):
        return plan, text  # the file is as wanted: nothing else to read
    files = store.read_all()
    token, current = files.get(path, ("new", None))
    if text == current:  # changed back by someone else meanwhile
        return plan, current
    sources = {key: value for key, (_token, value) in files.items()}
    if text is None:
        sources.pop(path, None)
    else:
        sources[path] = text
    try:
        policy.Policy(sources)
    except policy.PolicyError as exc:
        raise engine.PlanError("rules" if params.get("rules") is not None else "content" if text else "state",
                               f"the policy would be invalid, so qrexec would deny every call: {exc}") from exc
    plan.before, plan.after = {path: current}, {path: text}
    if text is None:
        plan.add(f"remove policy file {path}", lambda _client: _guarded(path, store.remove, name, token))
    else:
        verb = "write" if current is None else "replace"
        plan.add(f"{verb} policy file {path} ({len(text.splitlines())} lines)",
                 lambda _client: _guarded(path, store.replace, name, text, token))
    return plan, text


def _guarded(path: str, call, *args) -> None:
    """Run a store call; its refusal as a ValueError the plan reports (a concurrent edit named as such)."""
    try:
        call(*args)
    except policy_client.PolicyTokenMismatch as exc:
        raise ValueError(f"{path} was changed by someone else after this task read it; nothing was written, "
                         f"run again ({exc})") from exc
    except policy_client.PolicyAdminError as exc:
        raise ValueError(f"the policy admin service refused it: {exc}") from exc
