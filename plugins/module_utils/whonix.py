# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Whonix as layout data: the role corral.qubes.whonix's settings expanded for one Qubes release.

:func:`expand` turns the settings (the ``whonix_*`` variables of the role)
into what the role ``corral.qubes.qubes`` converges: a group of
``qubes_templates`` (the gateway and workstation templates from the
community repository), entries of ``qubes_layout`` (the gateway qube, the
Whonix disposable template, the workstation qube, in that order) and one
file of ``qubes_policies`` (template updates of the Whonix templates only
through the gateway, before the defaults).  :func:`merge` adds them to a
layout's own variables.  The rules Whonix puts on any layout (the version
of each release; a Whonix workstation's netvm is a Whonix gateway) are here
too, and :mod:`layout` applies them to every entry.  No Ansible imports.
"""

from __future__ import annotations

import re

VERSIONS = {"4.2": 17, "4.3": 18}
"""The Whonix version of each Qubes release (the community repository of R4.2 has 17, that of R4.3 has 18)."""
COMMUNITY = "qubes-templates-community"
GATEWAY_FEATURE = "whonix-gw"
WORKSTATION_FEATURE = "whonix-ws"
UPDATE_TAG = "whonix-updatevm"
TEMPLATE_NAME = re.compile(r"\Awhonix-(gateway|workstation)-([0-9]+)\Z")

SETTINGS = {
    "version": (int, str, type(None)), "gateway": (str,), "gateway_label": (str,), "gateway_netvm": (str,),
    "gateway_memory": (int,), "workstation": (str,), "workstation_label": (str,), "workstation_netvm": (str,),
    "dispvm_template": (str,), "dispvm_label": (str,), "enablerepo": (list,), "updates_policy": (str,),
    "updates_all_templates": (bool,),
}
"""The keys of the settings (the role's variables without their ``whonix_`` prefix) and their types."""

DEFAULTS = {
    "version": None, "gateway": "sys-whonix", "gateway_label": "black", "gateway_netvm": "sys-firewall",
    "gateway_memory": 500, "workstation": "anon-whonix", "workstation_label": "red", "workstation_netvm": "",
    "dispvm_template": "", "dispvm_label": "red", "enablerepo": [COMMUNITY],
    "updates_policy": "45-corral-whonix-updates", "updates_all_templates": False,
}
"""What the role's defaults say (``workstation_netvm`` and ``dispvm_template`` empty: the gateway, and
``whonix-workstation-NN-dvm``)."""


class WhonixError(ValueError):
    """A setting that cannot be, with the variable it comes from."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def template_kind(name) -> tuple[str, int] | None:
    """(``gateway`` or ``workstation``, version) for a Whonix template name, else None."""
    found = TEMPLATE_NAME.match(name) if isinstance(name, str) else None
    return (found.group(1), int(found.group(2))) if found else None


def version_error(name: str, release: str) -> str | None:
    """Why a Whonix template name does not belong on ``release`` (None if it does or is not Whonix)."""
    kind = template_kind(name)
    wanted = VERSIONS.get(release)
    if kind is None or wanted is None or kind[1] == wanted:
        return None
    return (f"Whonix {kind[1]} is not for Qubes R{release}, which has Whonix {wanted}: "
            f"use whonix-{kind[0]}-{wanted}")


def templates_for(version: int) -> tuple[str, str]:
    """The gateway and workstation template names of a Whonix version."""
    return f"whonix-gateway-{version}", f"whonix-workstation-{version}"


def expand(settings: dict, release: str, var: str = "whonix") -> dict:
    """``templates`` (one group), ``layout`` (ordered entries) and ``policies`` (one file) for ``release``.

    WhonixError names the setting at fault (``whonix_version``) before anything is planned.
    """
    given = dict(settings or {})
    if isinstance(given.get("gateway_memory"), str) and given["gateway_memory"].isdigit():
        given["gateway_memory"] = int(given["gateway_memory"])
    for key, value in given.items():
        if key not in SETTINGS:
            raise WhonixError(f"{var}_{key}", f"unknown setting; known: {', '.join(SETTINGS)}")
        if isinstance(value, bool) and bool not in SETTINGS[key] or not isinstance(value, SETTINGS[key]):
            raise WhonixError(f"{var}_{key}", f"expected {SETTINGS[key][0].__name__}, not {value!r}")
    conf = {**DEFAULTS, **{key: value for key, value in given.items() if value is not None or key == "version"}}
    wanted = VERSIONS.get(release)
    if wanted is None:
        raise WhonixError(f"{var}_version", f"no Whonix version known for Qubes R{release}")
    version = conf["version"]
    if version in (None, "", "None", "auto"):
        version = wanted
    elif not str(version).isdigit():
        raise WhonixError(f"{var}_version", f"expected a Whonix version such as {wanted}, not {version!r}")
    version = int(version)
    if version != wanted:
        raise WhonixError(f"{var}_version", f"Whonix {version} is not for Qubes R{release}, which has Whonix "
                                            f"{wanted} (whonix-gateway-{wanted}, whonix-workstation-{wanted}); "
                                            f"set {var}_version to {wanted} or leave it out")
    gateway_template, workstation_template = templates_for(version)
    gateway = conf["gateway"]
    if not gateway:
        raise WhonixError(f"{var}_gateway", "name the Whonix gateway qube (default sys-whonix)")
    netvm = conf["workstation_netvm"] or gateway
    if netvm != gateway:
        raise WhonixError(f"{var}_workstation_netvm",
                          f"{netvm} is not a Whonix gateway: a Whonix workstation's netvm is the gateway {gateway} "
                          f"(based on {gateway_template}); leave it out or set it to {gateway}")
    dispvm = conf["dispvm_template"] or f"{workstation_template}-dvm"
    tags_gw, tags_ws = gateway_tags(release), workstation_tags(release)
    layout = {
        gateway: {
            "template": gateway_template, "label": conf["gateway_label"], "netvm": conf["gateway_netvm"],
            "properties": {"provides_network": True, "autostart": True, "memory": conf["gateway_memory"]},
            "features": {"servicevm": "1"}, "tags": tags_gw, "tags_mode": "add",
        },
        dispvm: {
            "template": workstation_template, "label": conf["dispvm_label"], "netvm": gateway,
            "properties": {"template_for_dispvms": True},
            "features": {"appmenus-dispvm": "1"}, "tags": tags_ws, "tags_mode": "add",
        },
    }
    if conf["workstation"]:
        layout[conf["workstation"]] = {
            "template": workstation_template, "label": conf["workstation_label"], "netvm": gateway,
            "properties": {"default_dispvm": dispvm}, "tags": tags_ws, "tags_mode": "add",
        }
    return {"version": version, "release": release, "gateway": gateway, "dispvm_template": dispvm,
            "templates": [{"names": [gateway_template, workstation_template], "enablerepo": list(conf["enablerepo"])}],
            "layout": layout, "policies": {conf["updates_policy"]: updates_rules(gateway, conf["updates_all_templates"])}}


def gateway_tags(release: str) -> list[str]:
    """Tags the Whonix addon of qubesd gives a qube based on a gateway template."""
    return ["anon-gateway"] + (["sdwdate-gui-server"] if release != "4.2" else [])


def workstation_tags(release: str) -> list[str]:
    """Tags the Whonix addon of qubesd gives a qube based on a workstation template."""
    return ["anon-vm"] + (["sdwdate-gui-client"] if release != "4.2" else [])


def updates_rules(gateway: str, all_templates: bool = False) -> list[dict]:
    """qubes.UpdatesProxy: Whonix templates through the gateway only; optionally every template through it."""
    rules = [
        {"service": "qubes.UpdatesProxy", "source": f"@tag:{UPDATE_TAG}", "target": "@default", "action": "allow",
         "redirect": gateway},
        {"service": "qubes.UpdatesProxy", "source": f"@tag:{UPDATE_TAG}", "target": "@anyvm", "action": "deny"},
    ]
    if all_templates:
        rules.append({"service": "qubes.UpdatesProxy", "source": "@type:TemplateVM", "target": "@default",
                      "action": "allow", "redirect": gateway})
    return rules


def merge(expanded: dict, layout: dict, templates: list, policies: dict) -> dict:
    """The layout's variables with Whonix added: ``qubes_layout``, ``qubes_templates``, ``qubes_policies``.

    The layout's own entries come first, in their order (the gateway's netvm
    is converged before it), then the Whonix qubes in the role's order (the
    gateway before the qubes whose netvm it is), even those the layout names
    too: an entry the layout gives for a Whonix qube is laid over the role's
    (its ``properties`` and ``features`` key by key).
    The Whonix template group is added unless a group already names them.
    """
    layout = layout or {}
    merged = {name: entry for name, entry in layout.items() if name not in expanded["layout"]}
    for name, entry in expanded["layout"].items():
        own = layout.get(name) or {}
        combined = {**entry, **own}
        for key in ("properties", "features"):
            if key in entry or key in own:
                combined[key] = {**entry.get(key, {}), **(own.get(key) or {})}
        merged[name] = combined
    group = expanded["templates"][0]
    named = {name for item in templates or [] if isinstance(item, dict) for name in item.get("names") or []}
    groups = list(templates or [])
    missing = [name for name in group["names"] if name not in named]
    if missing:
        groups.append({**group, "names": missing})
    return {"qubes_layout": merged, "qubes_templates": groups, "qubes_policies": {**(policies or {}), **expanded["policies"]}}
