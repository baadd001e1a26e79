# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The qrexec policy admin API client (``policy.*``, served by qubes-policy-admin in dom0).

These are plain qrexec services, not qubesd's: the reply is raw, and a
refused request ends with exit status 1 and the reason on stdout.  Calls go
through :class:`client.QrexecTransport`: in dom0 ``qrexec-client -d dom0
"DEFAULT:QUBESRPC policy.X+ARG dom0"`` (``$QREXEC_CLIENT``), in a management
qube ``qrexec-client-vm dom0 policy.X+ARG`` (``$QREXEC_CLIENT_VM``), chosen
as :func:`client.default_transport` chooses.  No Ansible imports.

Names are ``NAME`` for ``policy.d/NAME.policy`` and ``NAME`` for
``policy.d/include/NAME`` in the ``include_*`` calls.  Every change carries a
token: ``sha256:<hex>`` from :meth:`PolicyAdmin.get` (the file must still be
exactly what was read), ``new`` (the file must not exist) or ``any``.
"""

from __future__ import annotations

from ansible_collections.corral.qubes.plugins.module_utils import client, policy

EXIT_USER_ERROR = 1
EXIT_REFUSED = 126


class PolicyAdminError(Exception):
    """A policy admin call failed; ``returncode`` is the qrexec client's exit status."""

    def __init__(self, message: str, returncode: int | None = None):
        super().__init__(message)
        self.message = message
        self.returncode = returncode


class PolicyTokenMismatch(PolicyAdminError):
    """The file is not what the token says (changed since read, exists for ``new``, or gone)."""


class PolicyNotFound(PolicyAdminError):
    """No such policy file."""


class PolicyInvalid(PolicyAdminError):
    """The service refused the request: the resulting policy (or the name) would be invalid."""


class PolicyRefused(PolicyAdminError):
    """qrexec refused the call: this caller is not allowed to use the policy admin API."""


def error_for(returncode: int, message: str) -> PolicyAdminError:
    """The typed error for a failed call."""
    lowered = message.lower()
    if returncode == EXIT_REFUSED:
        return PolicyRefused(message or "Request refused", returncode)
    if returncode == EXIT_USER_ERROR and "token" in lowered and "mismatch" in lowered:
        return PolicyTokenMismatch(message, returncode)
    if returncode == EXIT_USER_ERROR and "not found" in lowered:
        return PolicyNotFound(message, returncode)
    if returncode == EXIT_USER_ERROR:
        return PolicyInvalid(message, returncode)
    return PolicyAdminError(message or f"policy admin call failed with exit status {returncode}", returncode)


def default_transport() -> client.QrexecTransport:
    """``qrexec-client`` in dom0, ``qrexec-client-vm`` in a qube (the same test as the Admin API client)."""
    return client.QrexecTransport() if client.in_qube() else client.QrexecTransport.for_dom0()


class PolicyAdmin:
    """Typed ``policy.*`` calls over a :class:`client.QrexecTransport`."""

    def __init__(self, transport: client.QrexecTransport | None = None):
        self.transport = transport if transport is not None else default_transport()

    def __repr__(self) -> str:
        return f"PolicyAdmin({self.transport!r})"

    def call(self, service: str, arg: str = "", payload: bytes | str = b"") -> str:
        """One call to dom0; its stdout as text, or a typed :class:`PolicyAdminError`."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        proc = self.transport.run("dom0", f"{service}+{arg}" if arg else service, payload)
        if proc.returncode != 0:
            text = (proc.stdout or proc.stderr).decode("utf-8", "replace").strip()
            raise error_for(proc.returncode, text)
        return proc.stdout.decode("utf-8")

    # -- policy.d/NAME.policy ----------------------------------------------------

    def list(self) -> list[str]:
        """``policy.List``: file names without ``.policy``."""
        return self.call("policy.List").splitlines()

    def get(self, name: str) -> tuple[str, str]:
        """``policy.Get``: (token, text)."""
        return self._get("policy.Get", policy.validate_name(name))

    def replace(self, name: str, text: str, token: str = "any") -> None:
        """``policy.Replace``: write ``text`` if the file matches ``token``."""
        self.call("policy.Replace", policy.validate_name(name), f"{token}\n{text}")

    def remove(self, name: str, token: str = "any") -> None:
        """``policy.Remove``."""
        self.call("policy.Remove", policy.validate_name(name), token)

    def get_files(self, service: str) -> list[str]:
        """``policy.GetFiles``: the files with rules for ``service``."""
        return self.call("policy.GetFiles", service).splitlines()

    # -- policy.d/include/NAME --------------------------------------------------------

    def include_list(self) -> list[str]:
        """``policy.include.List``."""
        return self.call("policy.include.List").splitlines()

    def include_get(self, name: str) -> tuple[str, str]:
        """``policy.include.Get``: (token, text)."""
        return self._get("policy.include.Get", policy.validate_name(name))

    def include_replace(self, name: str, text: str, token: str = "any") -> None:
        """``policy.include.Replace``."""
        self.call("policy.include.Replace", policy.validate_name(name), f"{token}\n{text}")

    def include_remove(self, name: str, token: str = "any") -> None:
        """``policy.include.Remove``."""
        self.call("policy.include.Remove", policy.validate_name(name), token)

    def _get(self, service: str, name: str) -> tuple[str, str]:
        token, _sep, text = self.call(service, name).partition("\n")
        return token, text
