"""The OpenWrt feed: recipes whose python3-* dependencies are derived from the code's imports at
test time, versions that opkg and apk both accept, and sources pinned by hash."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FEED = REPO / "openwrt-feed"
sys.path.insert(0, str(FEED / "tools"))

from manifest import ManifestError, parse_manifest, read_manifest  # noqa: E402
from python_deps import Needs, collect_imports, compare, required_packages  # noqa: E402
from recipe import read_recipe  # noqa: E402

from usbprintd import __version__  # noqa: E402
from usbprintd.config import GlobalSettings  # noqa: E402

USBPRINTD = read_recipe(FEED / "net/usbprintd/Makefile")
# binary package -> (recipe, the importable module it ships)
LIBRARIES = {
    "python3-bottle": (FEED / "lang/python/python-bottle/Makefile", "bottle"),
    "python3-pyudev": (FEED / "lang/python/python-pyudev/Makefile", "pyudev"),
    "python3-pyusb": (FEED / "lang/python/python-pyusb/Makefile", "usb"),
}
ALL_RECIPES = [FEED / "net/usbprintd/Makefile", *(path for path, _ in LIBRARIES.values())]


def test_usbprintd_depends_on_exactly_the_python_packages_its_imports_need() -> None:
    needs = required_packages([REPO / "src" / "usbprintd"], own_packages=["usbprintd"])
    assert compare(needs, USBPRINTD.package("usbprintd").depends) == []


def test_usbprintd_depends_on_the_kernel_driver_udev_and_the_libraries() -> None:
    depends = set(USBPRINTD.package("usbprintd").depends)
    assert {"kmod-usb-printer", "libudev-zero", "python3-light", "python3-bottle",
            "python3-pyudev", "python3-pyusb"} <= depends
    # mDNS is on by default and umdns is not in OpenWrt's default package set
    assert GlobalSettings().mdns and "umdns" in depends
    # the default login asks rpcd through python3-ubus (the /ubus fallback needs LuCI)
    assert GlobalSettings().auth == "rpcd" and "python3-ubus" in depends
    assert "python3" not in depends  # the whole standard library would cost megabytes


@pytest.mark.parametrize("package", sorted(LIBRARIES))
def test_library_recipe_depends_on_what_the_library_imports_when_loaded(package: str) -> None:
    recipe_path, module = LIBRARIES[package]
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"{module} is not installed in the venv"
    location = Path(spec.origin)
    source = location.parent if location.name == "__init__.py" else location
    needs = required_packages([source], own_packages=[module], module_level_only=True)
    stdlib_only = Needs(frozenset(p for p in needs.packages if p not in LIBRARIES),
                        frozenset(), frozenset())
    assert compare(stdlib_only, read_recipe(recipe_path).package(package).depends) == []


def test_bottle_is_new_enough_for_python_3_13() -> None:
    version = read_recipe(LIBRARIES["python3-bottle"][0]).version
    assert tuple(int(part) for part in version.split(".")[:2]) >= (0, 13)


def test_usbprintd_recipe_version_is_the_projects() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert USBPRINTD.version == __version__ == pyproject["project"]["version"]


@pytest.mark.parametrize("path", ALL_RECIPES, ids=lambda p: p.parent.name)
def test_versions_are_valid_for_opkg_and_apk(path: Path) -> None:
    recipe = read_recipe(path)
    assert re.fullmatch(r"\d+(\.\d+)*", recipe.version), recipe.version  # apk-parsable
    assert re.fullmatch(r"[1-9]\d*", recipe.release), recipe.release  # becomes -rN for apk


@pytest.mark.parametrize("path", ALL_RECIPES, ids=lambda p: p.parent.name)
def test_recipes_use_nothing_specific_to_opkg(path: Path) -> None:
    text = path.read_text()
    assert "opkg" not in text
    assert not re.search(r"^define Package/\S+/(postinst|prerm|postrm|preinst)\b", text,
                         re.MULTILINE), "maintainer scripts differ between opkg and apk"
    assert "USERID" not in text
    for package in re.findall(r"^define Package/([a-z0-9.+-]+)\s*$", text, re.MULTILINE):
        if package.endswith("-src"):
            continue
        assert read_recipe(path).package(package).variables.get("PKGARCH") == "all"


@pytest.mark.parametrize("path", ALL_RECIPES, ids=lambda p: p.parent.name)
def test_recipes_use_the_packages_feed_python_helpers_in_order(path: Path) -> None:
    includes = re.findall(r"^include (\S+)", path.read_text(), re.MULTILINE)
    assert includes[0] == "$(TOPDIR)/rules.mk"
    assert "$(INCLUDE_DIR)/package.mk" in includes
    assert includes[-1] == "$(PYTHON_FEED_DIR)/python3-package.mk"
    if "$(PYTHON_FEED_DIR)/pypi.mk" in includes:
        assert includes.index("$(PYTHON_FEED_DIR)/pypi.mk") < includes.index(
            "$(INCLUDE_DIR)/package.mk")
    assert read_recipe(path).variable("PYTHON_FEED_DIR") == \
        "$(TOPDIR)/feeds/packages/lang/python"


@pytest.mark.parametrize("package", sorted(LIBRARIES))
def test_library_sources_come_from_pypi_pinned_by_hash(package: str) -> None:
    recipe = read_recipe(LIBRARIES[package][0])
    assert recipe.variable("PYPI_NAME")
    assert re.fullmatch(r"[0-9a-f]{64}", recipe.variable("PKG_HASH"))
    text = recipe.path.read_text()
    assert f"$(eval $(call BuildPackage,{package}))" in text
    assert f"$(eval $(call BuildPackage,{package}-src))" in text


@pytest.mark.skipif(os.environ.get("USBPRINTD_NETWORK_TESTS") != "1",
                    reason="set USBPRINTD_NETWORK_TESTS=1 to compare hashes with PyPI")
@pytest.mark.parametrize("package", sorted(LIBRARIES))
def test_library_hash_is_that_of_the_sdist_on_pypi(package: str) -> None:
    recipe = read_recipe(LIBRARIES[package][0])
    name, version = recipe.variable("PYPI_NAME"), recipe.version
    with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=30) as reply:
        files = json.load(reply)["releases"][version]
    [sdist] = [f for f in files if f["packagetype"] == "sdist"]
    assert sdist["filename"] == f"{name}-{version}.tar.gz"  # the name pypi.mk downloads
    url = sdist["url"]
    if not url.startswith("https://"):  # some mirrors of the JSON API give relative links
        url = "https://files.pythonhosted.org/" + url.split("packages/", 1)[1]
    with urllib.request.urlopen(url, timeout=60) as reply:
        digest = hashlib.sha256(reply.read()).hexdigest()
    assert digest == sdist["digests"]["sha256"] == recipe.variable("PKG_HASH")


def test_usbprintd_recipe_installs_through_the_shared_manifest() -> None:
    install = "\n".join(USBPRINTD.blocks["Py3Package/usbprintd/install"])
    assert "openwrt-feed/tools/manifest.py install" in install
    assert list(USBPRINTD.package("usbprintd").conffiles) == [
        e.destination for e in read_manifest() if e.kind == "conf"]
    destinations = {e.destination for e in read_manifest()}
    assert {"/etc/init.d/usbprintd", "/etc/config/usbprintd", "/usr/bin/usbprintd",
            "/usr/share/rpcd/acl.d/usbprintd.json", "/lib/upgrade/keep.d/usbprintd",
            "/usr/share/usbprintd/www"} <= destinations
    for entry in read_manifest():
        assert (REPO / entry.source).exists(), entry.source


def test_usbprintd_recipe_builds_its_wheel_from_the_project_files() -> None:
    """The ipk builder builds the wheel from the same files (build_ipk.py reads this list)."""
    assert USBPRINTD.prepared_sources("USBPRINTD_SOURCE") == ("pyproject.toml", "README.md",
                                                              "src")
    assert "python-setuptools/host" in USBPRINTD.variable("PKG_BUILD_DEPENDS")


def test_manifest_refuses_an_empty_directory_the_sdk_build_would_delete() -> None:
    with pytest.raises(ManifestError, match=r"manifest:2: an empty directory cannot be shipped"):
        parse_manifest("file 0644 README.md /x\ndir 0755 - /etc/usbprintd/firmware\n")


def test_firmware_directory_is_kept_across_sysupgrade_though_not_shipped() -> None:
    """The package cannot ship the (empty) firmware directory; it is made at run time, and
    sysupgrade must keep the blobs uploaded into it."""
    firmware_dir = GlobalSettings().firmware_dir
    keep = [line.strip().rstrip("/") for line in
            (REPO / "files/lib/upgrade/keep.d/usbprintd").read_text().splitlines()]
    assert firmware_dir in keep
    assert not any(e.destination.startswith(firmware_dir) for e in read_manifest())


# --- the import checker itself ----------------------------------------------------------------


def needs_of(tmp_path: Path, code: str) -> Needs:
    (tmp_path / "sample.py").write_text(code)
    return required_packages([tmp_path])


def test_checker_follows_what_a_module_pulls_in(tmp_path: Path) -> None:
    needs = needs_of(tmp_path, "import asyncio\n")
    assert {"python3-asyncio", "python3-logging"} <= needs.packages  # asyncio logs


def test_checker_maps_submodules_and_lazy_imports(tmp_path: Path) -> None:
    code = "def later():\n    from email.utils import formatdate\n    import ctypes.util\n"
    assert {"python3-email", "python3-ctypes"} <= needs_of(tmp_path, code).packages


def test_checker_needs_only_light_for_core_modules(tmp_path: Path) -> None:
    code = "import json, socket, struct, select, fcntl, hashlib, subprocess, threading\n"
    assert needs_of(tmp_path, code).packages == {"python3-light"}


def test_checker_knows_hashlib_functions_that_need_openssl(tmp_path: Path) -> None:
    assert "python3-openssl" in needs_of(tmp_path, "import hashlib\nhashlib.scrypt\n").packages
    assert "python3-openssl" in needs_of(tmp_path,
                                         "from hashlib import pbkdf2_hmac\n").packages


def test_checker_makes_the_ubus_binding_a_hard_dependency(tmp_path: Path) -> None:
    needs = needs_of(tmp_path, "def login():\n    import ubus\n")
    assert "python3-ubus" in needs.packages
    assert compare(needs, ["python3-light"]) == ["missing +python3-ubus"]


def test_checker_separates_required_optional_and_unknown_libraries(tmp_path: Path) -> None:
    needs = needs_of(tmp_path, "import bottle\nimport zeroconf\nimport requests\n")
    assert "python3-bottle" in needs.packages
    assert needs.optional == {"python3-zeroconf"}
    assert needs.unknown == {"requests"}
    assert compare(needs, ["python3-light", "python3-bottle"]) == [
        "unknown third-party import 'requests': add it to THIRD_PARTY"]


def test_checker_reports_missing_extra_and_optional_hard_dependencies(tmp_path: Path) -> None:
    needs = needs_of(tmp_path, "import logging\nimport zeroconf\n")
    problems = compare(needs, ["python3-light", "python3-xml", "python3-zeroconf",
                               "kmod-usb-printer"])
    assert problems == ["missing +python3-logging",
                        "+python3-xml is not needed by any import",
                        "+python3-zeroconf is optional for the code: do not make it a hard "
                        "dependency"]


def test_library_mode_skips_functions_and_guarded_imports(tmp_path: Path) -> None:
    (tmp_path / "lib.py").write_text(
        "import json\n"
        "try:\n    import sqlite3\nexcept ImportError:\n    sqlite3 = None\n"
        "def serve():\n    import asyncio\n"
        "if True:\n    import xml.dom\n")
    found = collect_imports([tmp_path], module_level_only=True)
    assert found.modules == {"json", "xml.dom"}
