# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the collection's HTML docs site offline, with warnings as errors.

``antsibull-docs sphinx-init`` writes a Sphinx project for corral.qubes (the collection as the
checkout's ``.collections`` link shows it); ``antsibull-docs collection --use-current`` renders
every plugin, role argument spec and the extra docs of ``docs/docsite`` into it. Each extra-docs
page that stands for a guide of ``docs/`` (``docs/docsite/rst/NAME.rst`` for ``docs/NAME.md``) is
replaced by the guide itself, read by MyST, under the same label, so a guide has one source.
Sphinx then builds with ``-W --keep-going`` and no intersphinx (nothing is fetched): the few labels
of the Ansible docsite the plugin pages refer to are on one local page that links there by address.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
COLLECTION = "corral.qubes"
LABEL = re.compile(r"^\.\. _(ansible_collections\.corral\.qubes\.docsite\.[\w.-]+):\s*$", re.M)

OFFLINE_CONF = '''
# make docs: offline and strict. No intersphinx inventories are fetched; the guides are Markdown.
extensions = [name for name in extensions if name != "sphinx.ext.intersphinx"] + ["myst_parser"]
intersphinx_mapping = {}
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3
'''


# Labels of the Ansible docsite that antsibull-docs' pages refer to; with intersphinx they would link
# there. Offline, one local page holds them, each pointing to that documentation by address.
ANSIBLE_LABELS = {
    "action_plugins": ("Action plugins", "https://docs.ansible.com/ansible/latest/plugins/action.html"),
    "callback_plugins": ("Callback plugins", "https://docs.ansible.com/ansible/latest/plugins/callback.html"),
    "common_return_values": ("Return values common to all modules",
                             "https://docs.ansible.com/ansible/latest/reference_appendices/common_return_values.html"),
    "ansible_configuration_settings": ("Ansible configuration settings",
                                       "https://docs.ansible.com/ansible/latest/reference_appendices/config.html"),
}
# Ansible's own environment variables that plugin options name (the connection's pipelining, remote_user).
ANSIBLE_ENVVARS = ("ANSIBLE_PIPELINING", "ANSIBLE_REMOTE_USER")


def ansible_references() -> str:
    lines = [":orphan:", "", "Ansible documentation referred to", "=================================", ""]
    for label, (title, url) in ANSIBLE_LABELS.items():
        lines += [f".. _{label}:", "", title, "-" * len(title), "", f"In the Ansible documentation: `{url} <{url}>`_.", ""]
    title = "Ansible's environment variables"
    lines += [title, "-" * len(title), ""]
    config = ANSIBLE_LABELS["ansible_configuration_settings"][1]
    for name in ANSIBLE_ENVVARS:
        lines += [f".. envvar:: {name}", "", f"   An Ansible setting: `{config} <{config}>`_.", ""]
    return "\n".join(lines)


def run(cmd, **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default=str(ROOT / "docs" / "build"), help="output folder (HTML in DEST/html)")
    args = parser.parse_args()
    dest = pathlib.Path(args.dest).resolve()
    src = dest / "sphinx"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True, mode=0o700)  # antsibull-docs wants its folders writable by itself only
    run([BIN / "antsibull-docs", "sphinx-init", "--use-current", "--fail-on-error", "--dest-dir", src,
         "--sphinx-theme", "sphinx_ansible_theme", "--project", COLLECTION, "--title", "corral.qubes", COLLECTION])
    with (src / "conf.py").open("a", encoding="utf-8") as conf:
        conf.write(OFFLINE_CONF)
    rst = src / "rst"
    rst.mkdir(mode=0o700, exist_ok=True)
    run([BIN / "antsibull-docs", "--config-file", src / "antsibull-docs.cfg", "collection", "--cleanup", "everything",
         "--fail-on-error", "--use-current", "--dest-dir", rst, COLLECTION])
    docsite = rst / "collections" / "corral" / "qubes" / "docsite"
    guides = 0
    for page in sorted(docsite.glob("*.rst")):
        guide = ROOT / "docs" / f"{page.stem}.md"
        if not guide.exists():
            continue
        label = LABEL.search(page.read_text(encoding="utf-8"))
        if not label:
            sys.exit(f"{page.name}: no label ansible_collections.corral.qubes.docsite.*")
        page.unlink()
        text = f"({label.group(1)})=\n\n{guide.read_text(encoding='utf-8')}"
        (docsite / f"{page.stem}.md").write_text(text, encoding="utf-8")
        guides += 1
    (rst / "ansible_references.rst").write_text(ansible_references(), encoding="utf-8")
    run([BIN / "sphinx-build", "-M", "html", rst, dest, "-c", src, "-W", "--keep-going", "-q", "-j", "2"])
    pages = len(list((dest / "html").rglob("*.html")))
    print(f"docs site: {pages} HTML pages ({guides} guides from docs/) in {dest / 'html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
