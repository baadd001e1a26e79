# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/rehearsal.md lists exactly the methods the rehearsal dom0 implements, per release."""

import pathlib
import re

from rehearsal import registry

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "rehearsal.md"


def documented_methods() -> dict[str, set]:
    table = DOC.read_text().split("## Implemented calls", 1)[1].split("\n## ", 1)[0]
    methods = {}
    for row in table.splitlines():
        if not row.startswith("| `admin."):
            continue
        cells = [c.strip() for c in row.strip("|").split("|")]
        # a '|' inside <a\|b> splits a cell: rejoin the first cell up to the dest column
        first = row.split(" | ")[0].lstrip("| ")
        releases = {r.strip() for r in cells[-1].split(",")}
        names = [re.sub(r"<[^>]*>", "*", n) for n in re.findall(r"`([^`]+)`", first)]
        full = names[0]
        for name in names:
            if name != full:
                dots = full.count(".") - name.count(".")
                name = ".".join(full.split(".")[:dots]) + "." + name
            methods[name] = releases
    return methods


def test_docs_list_every_method_with_its_releases():
    registry.load_handlers()
    implemented = {name: set(m.releases) for name, m in registry.METHODS.items()}
    assert documented_methods() == implemented
