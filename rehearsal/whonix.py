# SPDX-License-Identifier: GPL-3.0-or-later
"""What the Whonix addon of qubesd does, in one place of the rehearsal's qubesd model.

A real dom0 with Whonix has qubesd's Whonix extension
(qubes-core-admin-addon-whonix).  From its documented behaviour:

* a template that asks for the feature ``whonix-gw`` or ``whonix-ws`` (at
  its post-install, through qvm-features-request) gets it, and the tag
  ``whonix-updatevm`` (the updates policy sends such templates to the Whonix
  gateway);
* a qube created from, or loaded with, such a template gets the tag
  ``anon-gateway`` (gateway; R4.3 also ``sdwdate-gui-server``) or
  ``anon-vm`` (workstation; R4.3 also ``sdwdate-gui-client``);
* a workstation qube, when created, gets its netvm (``sys-whonix``, or the
  template's feature ``whonix-default-gw``; none when that qube does not
  exist) and its ``default_dispvm`` (``<template>-dvm``, or the template's
  feature ``whonix-default-dispvm``); on R4.3 also the feature
  ``gui-events-max-delay`` = 100.

Stand-ins, said as such: the rehearsal's qvm-template has no qube to make
the feature request, so it sets the features through the Admin API and
:func:`feature_set` reacts to a Whonix feature set on a template as the
addon reacts to the request.  A qube's template chain is followed (a
disposable of ``whonix-workstation-18-dvm`` is a workstation); a
``default_dispvm`` that does not exist is left at its default; netvm and
``default_dispvm`` are set at creation only, tags at creation and load.
"""

from __future__ import annotations

from ansible_collections.corral.qubes.plugins.module_utils import wire
from ansible_collections.corral.qubes.plugins.module_utils import whonix as whonix_mod

from rehearsal import properties

DEFAULT_GATEWAY = "sys-whonix"
GUI_DELAY = ("gui-events-max-delay", "100")
KINDS = ((whonix_mod.GATEWAY_FEATURE, "gateway"), (whonix_mod.WORKSTATION_FEATURE, "workstation"))


def _truthy(value) -> bool:
    return value not in (None, "", "0", "False")


def kind_of(dom0, qube) -> tuple[str | None, object]:
    """(``gateway``/``workstation``, the Whonix template) for a qube based (through its template chain) on one."""
    seen = 0
    template = dom0.template_of(qube)
    while template is not None and seen < 4:
        for feature, kind in KINDS:
            if _truthy(template.features.get(feature)):
                return kind, template
        template = dom0.template_of(template)
        seen += 1
    return None, None


def _tag(dom0, qube, tag: str) -> None:
    if tag not in qube.tags:
        qube.tags.add(tag)
        dom0.fire(qube, f"domain-tag-add:{tag}", tag=tag)


def _tags(dom0, qube, kind: str) -> None:
    wanted = whonix_mod.gateway_tags(dom0.release) if kind == "gateway" else whonix_mod.workstation_tags(dom0.release)
    for tag in wanted:
        _tag(dom0, qube, tag)


def feature_set(dom0, qube, name: str, value: str) -> None:
    """A template that gets whonix-gw/whonix-ws: the tag whonix-updatevm, as the addon grants the request."""
    if qube.klass == "TemplateVM" and name in dict(KINDS) and _truthy(value):
        _tag(dom0, qube, whonix_mod.UPDATE_TAG)


def created(dom0, qube) -> None:
    """A qube just created: its tags, and for a workstation its netvm, default_dispvm and GUI delay."""
    kind, template = kind_of(dom0, qube)
    if kind is None:
        return
    _tags(dom0, qube, kind)
    if kind != "workstation":
        return
    gateway = template.features.get("whonix-default-gw") or DEFAULT_GATEWAY
    try:
        properties.set_value(dom0, qube, "netvm", gateway.encode() if gateway in dom0.state.domains else b"")
    except (wire.QubesException, AttributeError):
        pass  # the addon's choice is refused (the gateway provides no network): the default stays
    dispvm = template.features.get("whonix-default-dispvm") or f"{template.name}-dvm"
    if dispvm in dom0.state.domains:
        try:
            properties.set_value(dom0, qube, "default_dispvm", dispvm.encode())
        except (wire.QubesException, AttributeError):
            pass
    if dom0.release != "4.2" and GUI_DELAY[0] not in qube.features:
        qube.features[GUI_DELAY[0]] = GUI_DELAY[1]
        dom0.fire(qube, f"domain-feature-set:{GUI_DELAY[0]}", feature=GUI_DELAY[0], value=GUI_DELAY[1])


def loaded(dom0) -> None:
    """qubesd starting: templates with a Whonix feature and the qubes based on them get their tags."""
    for qube in list(dom0.state.domains.values()):
        if qube.klass == "AdminVM":
            continue
        if qube.klass == "TemplateVM":
            for feature, _kind in KINDS:
                if _truthy(qube.features.get(feature)):
                    _tag(dom0, qube, whonix_mod.UPDATE_TAG)
        kind, _template = kind_of(dom0, qube)
        if kind is not None:
            _tags(dom0, qube, kind)
