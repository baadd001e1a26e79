# SPDX-License-Identifier: GPL-3.0-or-later
"""The rehearsal dom0's qrexec policy directory and its admin service (``policy.*``).

:class:`PolicyStore` keeps ``policy.d`` under the state directory, seeded
with the files of a fresh dom0, evaluates calls against it with the
collection's policy module, and answers the policy admin API the way
``qubes-policy-admin`` does: raw replies, exit status 1 and a message on
stdout for a request it refuses, ``sha256:`` tokens, and validation of the
whole resulting policy before anything is written.  Writes are atomic
(temporary file, fsync, rename, directory fsync): a killed server leaves
either the old file or the new one, never a mix.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ansible_collections.corral.qubes.plugins.module_utils import policy, policy_files

from rehearsal import policy_defaults

POLICY_DIR = "policy.d"
RUNTIME_POLICY_DIR = "runtime-policy.d"
"""R4.3's /run/qubes/policy.d, in the state directory: files in it are read by qrexec, written by nobody here."""


class PolicyAdminError(Exception):
    """A request the policy admin service refuses (exit status 1, the message on stdout)."""


class PolicyStore:
    """The policy directory of one rehearsal dom0."""

    def __init__(self, directory: str, release: str, runtime_directory: str | None = None):
        self.directory = directory
        self.release = release
        self.runtime_directory = runtime_directory if release != "4.2" else None
        """R4.3's runtime directory (/run/qubes/policy.d): its top-level files are merged in by name, the runtime
        copy winning. The stand-in takes no ``!include`` there (R4.3 resolves those against the runtime directory):
        such a file makes the policy invalid, which denies every call. Not read on R4.2."""
        self._cache: tuple | None = None
        self.before_commit: Callable[[], None] | None = None
        """Called between writing a temporary file and renaming it, or before a delete (fault injection)."""

    # -- the directory ------------------------------------------------------------

    def ensure(self) -> None:
        """Seed a missing directory with the default files; drop temporary files a crash left."""
        include = os.path.join(self.directory, policy.INCLUDE_DIR)
        if not os.path.isdir(self.directory):
            os.makedirs(include)
            for path, text in policy_defaults.default_files(self.release).items():
                self._write(path, text.encode())
        os.makedirs(include, exist_ok=True)
        for folder in (self.directory, include):
            for entry in os.listdir(folder):
                if entry.startswith(policy_files.TEMP_PREFIX):
                    os.unlink(os.path.join(folder, entry))

    def _full(self, path: str) -> str:
        return os.path.join(self.directory, *path.split("/"))

    def _read(self, path: str) -> bytes | None:
        try:
            with open(self._full(path), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def _write(self, path: str, data: bytes) -> None:
        """Replace a file atomically (mode 0664, as qubes-policy-admin writes)."""
        policy_files.write_atomically(self._full(path), data, self.before_commit)

    def _delete(self, path: str) -> None:
        if self.before_commit is not None:
            self.before_commit()
        policy_files.remove_durably(self._full(path))

    # -- evaluation --------------------------------------------------------------------

    def _signature(self) -> tuple:
        entries = []
        folders = [self.directory, os.path.join(self.directory, policy.INCLUDE_DIR)]
        for folder in folders + ([self.runtime_directory] if self.runtime_directory else []):
            try:
                with os.scandir(folder) as scan:
                    entries += sorted((e.path, e.stat().st_mtime_ns, e.stat().st_size) for e in scan if e.is_file())
            except FileNotFoundError:
                pass
        return tuple(entries)

    def load(self) -> policy.Policy:
        """The current policy (cached until a file changes); PolicyError if it is invalid."""
        signature = self._signature()
        if self._cache is None or self._cache[0] != signature:
            try:
                sources, directories = policy.read_directory(self.directory)
                if self.runtime_directory:
                    runtime = policy.read_runtime(self.runtime_directory)
                    for name, text in runtime.items():
                        if policy.includes(text):
                            raise policy.PolicyError(name, None, "!include", "the rehearsal's runtime policy "
                                                     "directory takes no !include lines")
                    sources = policy.with_runtime(sources, runtime)
                result = policy.Policy(sources, directories)
            except policy.PolicyError as exc:
                result = exc
            self._cache = (signature, result)
        if isinstance(self._cache[1], policy.PolicyError):
            raise self._cache[1]
        return self._cache[1]

    def evaluate(self, service: str, argument: str, source: str, target: str, system: dict,
                 assume_yes_for_ask: bool = False) -> policy.Decision:
        """A decision; an invalid policy denies everything, as qrexec does."""
        try:
            current = self.load()
        except policy.PolicyError as exc:
            return policy.Decision("deny", reason=f"invalid policy: {exc}")
        return current.evaluate(service, argument, source, target, system, assume_yes_for_ask)

    # -- the admin API -------------------------------------------------------------------

    def load_sources(self) -> tuple[dict[str, str], list[str]]:
        """Files and subdirectories of the policy directory."""
        return policy.read_directory(self.directory)

    def names(self, include: bool) -> list[str]:
        """``policy.List`` / ``policy.include.List``."""
        if include:
            folder = os.path.join(self.directory, policy.INCLUDE_DIR)
            return sorted(e for e in os.listdir(folder)
                          if not e.startswith(".") and os.path.isfile(os.path.join(folder, e)))
        return sorted(e[:-len(policy.POLICY_SUFFIX)] for e in os.listdir(self.directory)
                      if e.endswith(policy.POLICY_SUFFIX) and not e.startswith(".")
                      and os.path.isfile(os.path.join(self.directory, e)))

    def get(self, name: str) -> tuple[str, str]:
        """``policy.Get``: (token, text)."""
        data = self._read(self._path(name))
        if data is None:
            raise PolicyAdminError(f"Not found: {name}")
        return policy_files.token_of(data), data.decode("utf-8")

    def replace(self, name: str, token: str, text: str) -> None:
        """``policy.Replace``: check the token, validate the resulting policy, write."""
        path = self._path(name)
        self._check_token(name, path, token)
        sources, directories = self.load_sources()
        sources[path] = text
        self._validate(sources, directories, path)
        self._write(path, text.encode("utf-8"))

    def remove(self, name: str, token: str) -> None:
        """``policy.Remove``: check the token, validate the policy without the file, delete it."""
        path = self._path(name)
        if self._read(path) is None:
            raise PolicyAdminError(f"Not found: {name}")
        self._check_token(name, path, token)
        sources, directories = self.load_sources()
        del sources[path]
        self._validate(sources, directories, None)
        self._delete(path)

    def files_for(self, service: str) -> list[str]:
        """``policy.GetFiles``."""
        try:
            return self.load().files_for_service(service)
        except policy.PolicyError as exc:
            raise PolicyAdminError(f"Invalid policy: {exc}") from None

    @staticmethod
    def _path(name: str) -> str:
        try:
            return policy.file_path(name)
        except policy.PolicyError as exc:
            raise PolicyAdminError(f"Invalid name: {exc.message}") from None

    def _check_token(self, name: str, path: str, token: str) -> None:
        problem = policy_files.token_mismatch(name, self._read(path), token)
        if problem:
            raise PolicyAdminError(problem)

    @staticmethod
    def _validate(sources: dict, directories: list, changed: str | None) -> None:
        """Refuse a change that would leave the policy invalid."""
        try:
            result = policy.Policy(sources, directories)
            if changed is not None and changed.startswith(policy.INCLUDE_DIR + "/") and changed not in result.included:
                _check_unused_include(sources[changed], changed)
        except policy.PolicyError as exc:
            raise PolicyAdminError(f"Invalid policy: {exc}") from None

    def handle(self, service: str, arg: str, payload: bytes) -> tuple[int, bytes]:
        """Answer one ``policy.*`` call: (exit status, stdout)."""
        include = service.startswith("policy.include.")
        verb = service[len("policy.include." if include else "policy."):]
        name = f"{policy.INCLUDE_DIR}/{arg}" if include else arg
        try:
            return 0, self._answer(verb, include, name, arg, payload)
        except PolicyAdminError as exc:
            return 1, (str(exc) + "\n").encode("utf-8")

    def _answer(self, verb: str, include: bool, name: str, arg: str, payload: bytes) -> bytes:
        needs_arg = verb in ("Get", "Replace", "Remove", "GetFiles")
        if verb not in ("List", "Get", "Replace", "Remove") and not (verb == "GetFiles" and not include):
            raise PolicyAdminError(f"Unknown policy service: {verb}")
        if needs_arg != bool(arg):
            raise PolicyAdminError("An argument is required" if needs_arg else "No argument expected")
        if verb in ("List", "Get", "GetFiles") and payload:
            raise PolicyAdminError("No payload expected")
        if verb == "List":
            return "".join(n + "\n" for n in self.names(include)).encode()
        if verb == "GetFiles":
            return "".join(n + "\n" for n in self.files_for(arg)).encode()
        if verb == "Get":
            token, text = self.get(name)
            return f"{token}\n{text}".encode("utf-8")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyAdminError("The payload is not UTF-8") from None
        if verb == "Remove":
            self.remove(name, text.strip())
            return b""
        token, sep, content = text.partition("\n")
        if not sep:
            raise PolicyAdminError("Expected the token, a newline and the new content")
        self.replace(name, token.strip(), content)
        return b""


def _check_unused_include(text: str, path: str) -> None:
    """An include file nothing includes yet must still be a valid policy file of either format."""
    try:
        policy.validate(text, path)
    except policy.PolicyError:
        policy.validate(text, path, fmt="service")
