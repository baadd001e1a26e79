# SPDX-License-Identifier: GPL-3.0-or-later
"""The suite and mirror the qubes' base root is debootstrapped from: the machine's apt sources."""

from __future__ import annotations

from rehearsal import rootfs


def etc(tmp_path, main=None, **parts):
    """An /etc/apt with sources.list (``main``) and sources.list.d files (name=content)."""
    (tmp_path / "sources.list.d").mkdir()
    if main is not None:
        (tmp_path / "sources.list").write_text(main, encoding="utf-8")
    for name, text in parts.items():
        (tmp_path / "sources.list.d" / name.replace("_", ".")).write_text(text, encoding="utf-8")
    return str(tmp_path)


def test_deb822_first_release_suite_on_a_debian_uri(tmp_path):
    """Security and -updates suites are passed over; deb-src and disabled stanzas too."""
    path = etc(tmp_path, debian_sources=(
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: trixie\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: trixie\nEnabled: no\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm-updates bookworm\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"))
    assert rootfs.apt_source(path) == ("bookworm", "http://mirror.example/debian")


def test_one_line_sources_with_options(tmp_path):
    """``deb [opts] URI SUITE COMPONENTS`` in sources.list comes first; other repositories are passed over."""
    path = etc(tmp_path, "# old\ndeb [arch=amd64 signed-by=/k.gpg] https://other.example/apt cloud main\n"
                         "deb http://ftp.example/debian trixie main\n",
               x_sources="Types: deb\nURIs: http://later.example/debian\nSuites: bookworm\n")
    assert rootfs.apt_source(path) == ("trixie", "http://ftp.example/debian")


def test_fallback_without_a_debian_source(tmp_path):
    """Nothing usable: bookworm from deb.debian.org; files that are not .list or .sources are not read."""
    path = etc(tmp_path, node_sources_disabled="Types: deb\nURIs: http://x.example/debian\nSuites: trixie\n")
    assert rootfs.apt_source(path) == (rootfs.DEFAULT_SUITE, rootfs.DEFAULT_MIRROR)
