"""`make ipk`: the 24.10 package's structure and contents, and the daemon running out of a
staging root the package was installed into, printing a job sent with `nc`."""

from __future__ import annotations

import gzip
import io
import os
import signal
import subprocess
import sys
import tarfile
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import pytest
from daemon_process import free_port, send_with_nc, wait_for

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "openwrt-feed" / "tools"
sys.path.insert(0, str(TOOLS))

from build_ipk import PACKAGE, build, delete_empty_directories  # noqa: E402
from manifest import conffiles, read_manifest  # noqa: E402
from python_package import WheelError, build_wheel, install_wheel  # noqa: E402
from recipe import read_recipe  # noqa: E402

from usbprintd import __version__  # noqa: E402
from usbprintd.uci import AddSection, FileStore, SetOption  # noqa: E402

RECIPE = read_recipe(REPO / "openwrt-feed" / "net" / "usbprintd" / "Makefile")
SITE_PACKAGES = "usr/lib/python3.11/site-packages"
DIST_INFO = f"{SITE_PACKAGES}/usbprintd-{__version__}.dist-info"
# What a setuptools wheel's dist-info holds; `installer` (the SDK build) adds nothing to it.
DIST_INFO_FILES = {"METADATA", "WHEEL", "RECORD", "entry_points.txt", "top_level.txt"}


def members(data: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    """Name -> (entry, content) of a tar.gz, in archive order."""
    result = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for entry in archive.getmembers():
            content = archive.extractfile(entry).read() if entry.isfile() else b""
            result[entry.name] = (entry, content)
    return result


@pytest.fixture(scope="module")
def ipk(tmp_path_factory) -> Path:
    return build(out_dir=tmp_path_factory.mktemp("ipk"))


@pytest.fixture(scope="module")
def parts(ipk: Path) -> dict[str, dict[str, tuple[tarfile.TarInfo, bytes]]]:
    outer = members(ipk.read_bytes())
    return {"outer": outer,
            "control": members(outer["./control.tar.gz"][1]),
            "data": members(outer["./data.tar.gz"][1])}


def control_fields(parts) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in parts["control"]["./control"][1].decode().splitlines():
        if line.startswith(" "):
            fields[key] += "\n" + line
        else:
            key, _, value = line.partition(": ")
            fields[key] = value
    return fields


def test_package_is_named_after_version_and_release(ipk: Path) -> None:
    assert ipk.name == f"usbprintd_{RECIPE.version}-{RECIPE.release}_all.ipk"
    assert RECIPE.version == __version__


def test_outer_archive_is_gzipped_tar_of_the_three_opkg_members(ipk: Path, parts) -> None:
    assert ipk.read_bytes()[:2] == b"\x1f\x8b"
    assert list(parts["outer"]) == ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
    assert parts["outer"]["./debian-binary"][1] == b"2.0\n"
    gzip.decompress(parts["outer"]["./data.tar.gz"][1])  # each member is gzip'd itself


def test_control_describes_the_recipe(parts) -> None:
    fields = control_fields(parts)
    package = RECIPE.package(PACKAGE)
    assert fields["Package"] == "usbprintd"
    assert fields["Version"] == f"{RECIPE.version}-{RECIPE.release}"
    assert fields["Architecture"] == "all"
    assert fields["Depends"].split(", ") == list(package.depends)
    assert {"python3-light", "python3-bottle", "python3-pyudev", "python3-pyusb",
            "python3-ubus", "kmod-usb-printer", "libudev-zero", "umdns"} <= set(
        fields["Depends"].split(", "))
    data_bytes = sum(len(content) for entry, content in parts["data"].values() if entry.isfile())
    assert int(fields["Installed-Size"]) == data_bytes
    assert fields["Description"].startswith(package.variables["TITLE"])
    assert "\n usbprintd turns every USB printer" in fields["Description"]


def test_control_lists_conffiles_and_standard_maintainer_scripts(parts) -> None:
    control = parts["control"]
    assert control["./conffiles"][1].decode().split() == ["/etc/config/usbprintd"]
    for script, function in (("./postinst", "default_postinst"), ("./prerm", "default_prerm")):
        entry, content = control[script]
        assert entry.mode == 0o755
        text = content.decode()
        assert text.startswith("#!/bin/sh\n")
        assert '. "${IPKG_INSTROOT}/lib/functions.sh"' in text
        assert f'{function} "$0" "$@"' in text


def test_data_holds_the_manifest_files_with_their_modes(parts) -> None:
    data = parts["data"]
    for entry in read_manifest():
        if entry.kind == "tree":
            sources = [p for p in (REPO / entry.source).rglob("*") if p.is_file()]
            assert sources
            for source in sources:
                name = f".{entry.destination}/{source.relative_to(REPO / entry.source)}"
                assert data[name][1] == source.read_bytes(), name
                assert data[name][0].mode == entry.mode
        else:
            info, content = data[f".{entry.destination}"]
            assert content == (REPO / entry.source).read_bytes()
            assert info.mode == entry.mode, entry.destination
    assert data["./etc/init.d/usbprintd"][0].mode == 0o755
    assert data["./etc/config/usbprintd"][0].mode == 0o600


def test_data_has_no_empty_directory_as_the_sdk_build_has_none(parts) -> None:
    names = list(parts["data"])
    for name, (entry, _) in parts["data"].items():
        if entry.isdir():
            assert any(other.startswith(name.rstrip("/") + "/") for other in names), name


def test_empty_directories_are_deleted_deepest_first(tmp_path: Path) -> None:
    (tmp_path / "etc/usbprintd/firmware").mkdir(parents=True)
    (tmp_path / "usr/share/www/static").mkdir(parents=True)
    (tmp_path / "usr/share/www/index.html").write_text("<html>")
    delete_empty_directories(tmp_path)
    assert not (tmp_path / "etc").exists()  # emptied once firmware/ and usbprintd/ went
    assert not (tmp_path / "usr/share/www/static").exists()
    assert (tmp_path / "usr/share/www/index.html").is_file()
    assert tmp_path.is_dir()  # the package root itself stays


def test_python_package_is_byte_code_only_with_every_module(parts) -> None:
    data = parts["data"]
    package_dir = f"./{SITE_PACKAGES}/usbprintd/"
    shipped = {name[len(package_dir):] for name in data if name.startswith(package_dir)}
    source = REPO / "src" / "usbprintd"
    modules = {str(p.relative_to(source).with_suffix(".pyc")) for p in source.rglob("*.py")}
    assert modules <= shipped
    assert not any(name.endswith(".py") for name in shipped)
    assert "data/development.conf" in shipped


def test_python_package_carries_the_wheels_dist_info_as_the_sdk_build_does(parts) -> None:
    data = parts["data"]
    shipped = {name.rsplit("/", 1)[1] for name, (entry, _) in data.items()
               if name.startswith(f"./{DIST_INFO}/") and entry.isfile()}
    assert shipped == DIST_INFO_FILES
    metadata = data[f"./{DIST_INFO}/METADATA"][1].decode()
    assert "Name: usbprintd\n" in metadata
    assert f"Version: {__version__}\n" in metadata
    assert "usbprintd = usbprintd.cli:main" in data[f"./{DIST_INFO}/entry_points.txt"][1].decode()
    recorded = {line.split(",")[0] for line in
                data[f"./{DIST_INFO}/RECORD"][1].decode().splitlines()}
    source = REPO / "src" / "usbprintd"
    assert {f"usbprintd/{p.relative_to(source)}" for p in source.rglob("*.py")} <= recorded


def expected_layout() -> set[str]:
    """Every file the SDK build puts into the package, derived from the project itself: the
    manifest's files, the package's modules as byte-code and its package data (pyproject),
    and the wheel's dist-info."""
    files: set[str] = set()
    for entry in read_manifest():
        if entry.kind == "tree":
            tree = REPO / entry.source
            files |= {f"{entry.destination}/{p.relative_to(tree)}" for p in tree.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts}
        else:
            files.add(entry.destination)
    source = REPO / "src" / "usbprintd"
    site = f"/{SITE_PACKAGES}/usbprintd"
    files |= {f"{site}/{p.relative_to(source).with_suffix('.pyc')}" for p in source.rglob("*.py")}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for pattern in pyproject["tool"]["setuptools"]["package-data"]["usbprintd"]:
        files |= {f"{site}/{p.relative_to(source)}" for p in source.glob(pattern) if p.is_file()}
    files |= {f"/{DIST_INFO}/{name}" for name in DIST_INFO_FILES}
    return files


def test_data_is_exactly_the_layout_of_the_sdk_build(parts) -> None:
    shipped = {name[1:] for name, (entry, _) in parts["data"].items() if not entry.isdir()}
    expected = expected_layout()
    assert shipped - expected == set(), "shipped, but not by the SDK build"
    assert expected - shipped == set(), "missing, though the SDK build ships it"


def test_every_entry_is_root_owned_and_reproducible(ipk: Path, parts, tmp_path: Path) -> None:
    for part in ("control", "data"):
        for entry, _ in parts[part].values():
            assert (entry.uid, entry.gid) == (0, 0)
    again = build(out_dir=tmp_path)
    assert again.read_bytes() == ipk.read_bytes()


def test_manifest_conffiles_are_the_recipes(parts) -> None:
    assert list(RECIPE.package(PACKAGE).conffiles) == conffiles(read_manifest())


# --- installed into a staging root ----------------------------------------------------------

FUNCTIONS_SH = """
default_postinst() {
    echo "default_postinst $1 root=$IPKG_INSTROOT" >> "$IPKG_INSTROOT/postinst.log"
    # image build (IPKG_INSTROOT set): enable only, as rc.common's enable does
    pkg=$(basename "${1%.*}")
    for script in $(grep '^/etc/init.d/' "$IPKG_INSTROOT/usr/lib/opkg/info/$pkg.list"); do
        start=$(sed -n 's/^START=//p' "$IPKG_INSTROOT$script")
        mkdir -p "$IPKG_INSTROOT/etc/rc.d"
        ln -s "../init.d/${script##*/}" "$IPKG_INSTROOT/etc/rc.d/S$start${script##*/}"
    done
}
"""


def install_into(ipk_parts, root: Path) -> Path:
    """What opkg does with IPKG_INSTROOT=root: unpack data, record the file list, keep the
    control scripts in usr/lib/opkg/info; returns the postinst path."""
    with tarfile.open(fileobj=io.BytesIO(ipk_parts["outer"]["./data.tar.gz"][1])) as archive:
        archive.extractall(root)  # our own archive
    info = root / "usr/lib/opkg/info"
    info.mkdir(parents=True)
    files = [name[1:] for name, (entry, _) in ipk_parts["data"].items() if not entry.isdir()]
    (info / f"{PACKAGE}.list").write_text("".join(f"{f}\n" for f in files))
    for name in ("control", "postinst", "prerm"):
        script = info / f"{PACKAGE}.{name}"
        script.write_bytes(ipk_parts["control"][f"./{name}"][1])
        script.chmod(0o755)
    return info / f"{PACKAGE}.postinst"


def run_postinst(postinst: Path, root: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(postinst)], env={**os.environ, "IPKG_INSTROOT": str(root),
                                                      **env},
                          capture_output=True, text=True, timeout=30)


def test_postinst_in_an_image_build_hands_over_to_default_postinst(parts, tmp_path) -> None:
    root = tmp_path / "root"
    postinst = install_into(parts, root)
    assert run_postinst(postinst, root).returncode == 0  # no base-files yet: nothing to do
    assert not (root / "postinst.log").exists()

    (root / "lib/functions.sh").write_text(FUNCTIONS_SH)
    assert run_postinst(postinst, root, IPKG_NO_SCRIPT="1").returncode == 0
    assert not (root / "postinst.log").exists()

    result = run_postinst(postinst, root)
    assert result.returncode == 0, result.stderr
    assert (root / "postinst.log").read_text() == f"default_postinst {postinst} root={root}\n"
    assert os.readlink(root / "etc/rc.d/S95usbprintd") == "../init.d/usbprintd"


def test_daemon_runs_from_the_installed_files_and_prints(parts, tmp_path) -> None:
    root = tmp_path / "root"
    install_into(parts, root)
    spool = tmp_path / "spool"
    spool.mkdir()
    config = tmp_path / "usbprintd.conf"
    config.write_bytes((root / "etc/config/usbprintd").read_bytes())  # the shipped default
    printer_port, web_port = free_port(), free_port()
    FileStore(config).apply([
        SetOption("main", "web_listen", "127.0.0.1"),
        SetOption("main", "web_port", str(web_port)),
        SetOption("main", "auth", "none"),
        SetOption("main", "mdns", "0"),
        SetOption("main", "firmware_dir", str(root / "etc/usbprintd/firmware")),
        AddSection("printer", "virtual"),
        SetOption("virtual", "enabled", "1"),
        SetOption("virtual", "name", "Spool printer"),
        SetOption("virtual", "device", str(spool)),
        SetOption("virtual", "port", str(printer_port)),
        SetOption("virtual", "bind", "127.0.0.1"),
    ])
    env = {**os.environ, "PYTHONPATH": str(root / SITE_PACKAGES), "PYTHONUNBUFFERED": "1",
           "PYTHONDONTWRITEBYTECODE": "1",
           "USBPRINTD_WWW": str(root / "usr/share/usbprintd/www")}
    probe = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m, usbprintd; "
         "d = m.distribution('usbprintd'); "
         "print(usbprintd.__file__, d.version, d.locate_file(''), sep='\\n')"],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
    assert probe.stdout.split("\n")[:3] == [
        str(root / SITE_PACKAGES / "usbprintd/__init__.pyc"), __version__,
        str(root / SITE_PACKAGES)]  # the package and its metadata come from the installed files

    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, str(root / "usr/bin/usbprintd"), "run", "--config", str(config),
             "--log-level", "debug"], env=env, stdout=log, stderr=subprocess.STDOUT,
            cwd=tmp_path)
    try:
        wait_for(lambda: f"127.0.0.1:{printer_port}" in log_path.read_text(), timeout=20)
        job = b"\x1b%-12345X@PJL\r\n" + bytes(range(256)) * 64 + b"\x0c"
        send_with_nc(printer_port, job)
        spooled = wait_for(lambda: [p for p in spool.iterdir() if p.stat().st_size == len(job)],
                           timeout=10)
        assert spooled[0].read_bytes() == job

        page = urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=10)
        assert page.status == 200
        assert "</html>" in page.read().decode()  # rendered from the installed templates
        api = urllib.request.urlopen(f"http://127.0.0.1:{web_port}/api/printers", timeout=10)
        assert "Spool printer" in api.read().decode()
        style = urllib.request.urlopen(f"http://127.0.0.1:{web_port}/static/style.css",
                                       timeout=10)
        assert style.read() == (REPO / "www/static/style.css").read_bytes()
    finally:
        daemon.send_signal(signal.SIGTERM)
        status = daemon.wait(timeout=20)
    assert status == 0, log_path.read_text()
    assert "Traceback" not in log_path.read_text()


# --- the wheel, built and installed as the SDK build does --------------------------------------


def make_wheel(path: Path, members: dict[str, str], purelib: bool = True) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
        archive.writestr("demo-1.0.dist-info/WHEEL",
                         f"Wheel-Version: 1.0\nRoot-Is-Purelib: {str(purelib).lower()}\n")
    return path


def test_wheel_install_keeps_only_what_goes_into_site_packages(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "demo-1.0-py3-none-any.whl", {
        "demo/__init__.py": "x = 1\n",
        "demo-1.0.data/purelib/demo_extra.py": "y = 2\n",
        "demo-1.0.data/scripts/demo": "#!python\n",
        "demo-1.0.data/data/share/demo.txt": "z\n",
    })
    site = tmp_path / "site"
    written = install_wheel(wheel, site)
    assert sorted(str(p.relative_to(site)) for p in written) == [
        "demo-1.0.dist-info/WHEEL", "demo/__init__.py", "demo_extra.py"]
    assert (site / "demo_extra.py").read_text() == "y = 2\n"


def test_wheel_install_refuses_platform_wheels_and_escaping_members(tmp_path: Path) -> None:
    with pytest.raises(WheelError, match="not a pure-Python wheel"):
        install_wheel(make_wheel(tmp_path / "a.whl", {"demo.py": ""}, purelib=False),
                      tmp_path / "site")
    with pytest.raises(WheelError, match="outside the installation"):
        install_wheel(make_wheel(tmp_path / "b.whl", {"../evil.py": ""}), tmp_path / "site")


def test_wheel_build_names_the_build_requirements_no_interpreter_has(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["no-such-build-requirement>=1"]\n'
        'build-backend = "setuptools.build_meta"\n')
    with pytest.raises(WheelError, match=r"lacks no-such-build-requirement\b"):
        build_wheel(tmp_path, tmp_path / "dist", [sys.executable])
