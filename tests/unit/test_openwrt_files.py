"""The files the package installs on the router: default config, ACL, sysupgrade list, first-boot
import, launcher, and that every shell script passes shellcheck."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from usbprintd import __version__
from usbprintd.config import GlobalSettings, parse_config
from usbprintd.uci import parse_sections
from usbprintd.web.ubus import ACCESS_GROUP

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "files"
IMPORT_SCRIPT = FILES / "etc/uci-defaults/90-usbprintd-import-p910nd"
BUSYBOX = shutil.which("busybox")


def shell_scripts() -> list[Path]:
    scripts = []
    for path in sorted(FILES.rglob("*")):
        if path.is_file():
            first_line = path.read_bytes().split(b"\n", 1)[0]
            if first_line.startswith(b"#!") and first_line.split()[0].endswith(b"/sh"):
                scripts.append(path)
    return scripts


def test_the_shell_scripts_are_found() -> None:
    names = {p.name for p in shell_scripts()}
    assert {"usbprintd", "90-usbprintd-import-p910nd"} <= names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(FILES)))
def test_shell_script_passes_shellcheck(script: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck missing (Debian package shellcheck)")
    result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_installed_scripts_are_executable() -> None:
    for relative in ("etc/init.d/usbprintd", "usr/bin/usbprintd"):
        assert os.access(FILES / relative, os.X_OK), relative


def test_default_config_is_the_documented_global_section_without_printers() -> None:
    sections = parse_sections((FILES / "etc/config/usbprintd").read_text())
    config = parse_config(sections)
    assert config.issues == ()
    assert config.printers == ()
    assert [(s.type, s.name) for s in sections] == [("usbprintd", "main")]
    settings = config.settings
    assert settings.auth == "rpcd"
    assert settings.web_port == 631
    assert settings.autoadd and settings.mdns
    # every option is written out, so nothing depends on a default changing silently
    assert set(sections[0].options) == set(GlobalSettings.__dataclass_fields__) - {
        "password_hash"}


def test_sysupgrade_keeps_the_firmware_directory_of_the_default_config() -> None:
    settings = parse_config(parse_sections((FILES / "etc/config/usbprintd").read_text())).settings
    kept = (FILES / "lib/upgrade/keep.d/usbprintd").read_text().split()
    assert kept == [settings.firmware_dir.rstrip("/") + "/"]


def test_rpcd_acl_defines_the_group_the_web_page_checks() -> None:
    acl = json.loads((FILES / "usr/share/rpcd/acl.d/usbprintd.json").read_text())
    assert list(acl) == [ACCESS_GROUP]
    group = acl[ACCESS_GROUP]
    assert group["read"]["uci"] == ["usbprintd"]
    assert group["write"]["uci"] == ["usbprintd"]
    # the web page calls session.access and session.destroy with the user's own session
    assert set(group["read"]["ubus"]["session"]) == {"access", "destroy"}


def test_launcher_runs_the_command_line() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, str(FILES / "usr/bin/usbprintd"), "--version"],
                            capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"usbprintd {__version__}"


# --- first boot: importing p910nd's printers --------------------------------------------------


@pytest.fixture
def first_boot(tmp_path: Path):
    """Run the uci-defaults script the way /etc/init.d/boot does (sourced in a subshell), with
    stand-ins for uci, logger, usbprintd and p910nd's init script."""
    if BUSYBOX is None:
        pytest.skip("busybox (package busybox-static) missing")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    stub = '#!/bin/sh\necho "{name} $*" >> "{log}"\n{tail}\n'
    stubs = {
        "uci": '[ "$HAS_PRINTERS" = 1 ] && { echo printer; exit 0; }; exit 1',
        "logger": "exit 0",
        "usbprintd": 'exit "$IMPORT_STATUS"',
        "p910nd.init": "exit 0",
    }
    for name, tail in stubs.items():
        path = bindir / name
        path.write_text(stub.format(name=name, log=log, tail=tail))
        path.chmod(0o755)
    p910nd_config = tmp_path / "p910nd"
    script = tmp_path / "90-usbprintd-import-p910nd"
    script.write_text(
        IMPORT_SCRIPT.read_text()
        .replace("/etc/config/p910nd", str(p910nd_config))
        .replace("/usr/bin/usbprintd", str(bindir / "usbprintd"))
        .replace("/etc/init.d/p910nd", str(bindir / "p910nd.init")))

    def run(p910nd: bool, has_printers: bool, import_ok: bool = True) -> list[str]:
        log.unlink(missing_ok=True)
        if p910nd:
            p910nd_config.write_text("config p910nd\n\toption device '/dev/usb/lp0'\n")
        env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}",
               "HAS_PRINTERS": "1" if has_printers else "0",
               "IMPORT_STATUS": "0" if import_ok else "1"}
        result = subprocess.run([BUSYBOX, "sh", "-c", f'( . "{script}" ) && echo deleted'],
                                env=env, capture_output=True, text=True, timeout=30)
        assert result.stdout.strip() == "deleted"  # returned 0, so it runs only once
        calls = log.read_text().splitlines() if log.exists() else []
        return [c for c in calls if not c.startswith("logger")]

    run.p910nd_config = p910nd_config
    return run


def test_first_boot_imports_p910nd_printers_and_retires_p910nd(first_boot) -> None:
    calls = first_boot(p910nd=True, has_printers=False)
    assert calls == [
        "uci -q get usbprintd.@printer[0]",
        f"usbprintd import-p910nd --from {first_boot.p910nd_config}",
        "p910nd.init stop",
        "p910nd.init disable",
    ]


def test_first_boot_without_p910nd_does_nothing(first_boot) -> None:
    assert first_boot(p910nd=False, has_printers=False) == []


def test_first_boot_leaves_existing_printers_alone(first_boot) -> None:
    assert first_boot(p910nd=True, has_printers=True) == ["uci -q get usbprintd.@printer[0]"]


def test_failed_import_keeps_p910nd_running(first_boot) -> None:
    calls = first_boot(p910nd=True, has_printers=False, import_ok=False)
    assert calls[-1] == f"usbprintd import-p910nd --from {first_boot.p910nd_config}"
    assert not any(c.startswith("p910nd.init") for c in calls)
