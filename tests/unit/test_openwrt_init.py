"""The procd init script, run by BusyBox sh under recording stand-ins for rc.common, procd.sh
and jshn.sh. The recorded calls are replayed into the message procd would receive."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from usbprintd.announce import PrinterAnnouncement, UmdnsAnnouncer, service_records

REPO = Path(__file__).resolve().parents[2]
INIT_SCRIPT = REPO / "files/etc/init.d/usbprintd"
SHELL = shutil.which("busybox")

pytestmark = pytest.mark.skipif(SHELL is None, reason="busybox (package busybox-static) missing")

# /etc/rc.common as far as a procd init script sees it: its hooks, start/stop/reload, dispatch.
RC_COMMON = r"""
. "$STANDINS/procd.sh"
initscript=$1
action=${2:-help}
shift 2
start_service() { return 0; }
stop_service() { return 0; }
service_triggers() { return 0; }
. "$initscript"
rc_procd() {
    procd_open_service "$(basename "$initscript")" "$initscript"
    "$@"
    procd_close_service
}
start() { rc_procd start_service "$@"; }
stop() { stop_service "$@"; procd_kill "$(basename "$initscript")" "$1"; }
reload() { if type reload_service >/dev/null 2>&1; then reload_service "$@"; else start; fi; }
for command in start stop reload $EXTRA_COMMANDS; do
    [ "$command" = "$action" ] && { $action "$@"; exit $?; }
done
echo "unknown command $action" >&2
exit 1
"""

# procd.sh and jshn.sh stand-ins: every call is appended to $CALLS as
# "<function>\t<jshn namespace>\t<arg>\t<arg>...". Reading a JSON file works for real (the file
# is flattened into shell variables, with a cursor per namespace, as jshn does).
PROCD_SH = r"""
JNS=""
record() {
    { printf '%s\t%s' "$1" "$JNS"; shift; for arg in "$@"; do printf '\t%s' "$arg"; done
      printf '\n'; } >> "$CALLS"
}
for f in procd_open_service procd_open_instance procd_set_param procd_append_param \
        procd_close_instance procd_add_reload_trigger procd_add_config_trigger \
        procd_send_signal procd_kill json_add_object json_add_array json_add_string \
        json_add_int json_add_boolean json_close_object json_close_array json_cleanup; do
    eval "$f() { record $f \"\$@\"; }"
done
procd_close_service() { service_triggers; record procd_close_service "$@"; }
procd_running() { record procd_running "$@"; [ -e "$STANDIN_RUNNING" ]; }
json_set_namespace() {
    [ -n "$2" ] && eval "$2=\$JNS"
    JNS="$1"
    record json_set_namespace "$1"
}
procd_open_data() { json_set_namespace procd __procd_old_cb; json_add_object data; }
procd_close_data() { json_close_object; json_set_namespace "$__procd_old_cb"; }
_json_cursor() { eval "echo \"\${JCUR_$JNS}\""; }
json_load_file() {
    record json_load_file "$@"
    flat=$(python3 "$STANDINS/flatten.py" "$1") || return 1
    eval "$flat"
    eval "JCUR_$JNS=J"
}
json_select() {
    record json_select "$@"
    cursor=$(_json_cursor)
    if [ "$1" = ".." ]; then eval "JCUR_$JNS=${cursor%_*}"; return 0; fi
    eval "kind=\${JT_${cursor}_$1}"
    case "$kind" in object|array) eval "JCUR_$JNS=${cursor}_$1" ;; *) return 1 ;; esac
}
json_get_keys() { record json_get_keys "$@"; cursor=$(_json_cursor); eval "$1=\${JK_$cursor}"; }
json_get_var() { record json_get_var "$@"; cursor=$(_json_cursor); eval "$1=\${JV_${cursor}_$2}"; }
"""

FLATTEN_PY = r"""
import json, re, shlex, sys

def emit(path, value):
    if isinstance(value, dict):
        items = list(value.items())
        kind = "object"
    elif isinstance(value, list):
        items = [(str(i), v) for i, v in enumerate(value, 1)]
        kind = "array"
    else:
        print(f"JT_{path}=" + ("int" if isinstance(value, int) else "string"))
        print(f"JV_{path}=" + shlex.quote(str(value)))
        return
    print(f"JT_{path}={kind}")
    print(f"JK_{path}=" + shlex.quote(" ".join(k for k, _ in items)))
    for key, item in items:
        assert re.fullmatch(r"[A-Za-z0-9]+", key), key
        emit(f"{path}_{key}", item)

try:
    document = json.load(open(sys.argv[1]))
except ValueError:
    sys.exit(1)
emit("J", document)
"""

UBUS = """#!/bin/sh
printf 'ubus\t\t%s\n' "$*" >> "$CALLS"
"""

UCI = """#!/bin/sh
[ "$*" = "-q get usbprintd.@usbprintd[0].firmware_dir" ] && echo "$UCI_FIRMWARE_DIR"
"""


@dataclass
class Call:
    function: str
    namespace: str
    args: list[str]


@dataclass
class InitRun:
    calls: list[Call]

    def named(self, function: str) -> list[Call]:
        return [c for c in self.calls if c.function == function]


@pytest.fixture
def run_init(tmp_path: Path):
    """Run `/etc/init.d/usbprintd <action>` with the daemon's state file at `mdns_file`."""
    standins = tmp_path / "standins"
    bindir = tmp_path / "bin"
    standins.mkdir()
    bindir.mkdir()
    (standins / "rc.common").write_text(RC_COMMON)
    (standins / "procd.sh").write_text(PROCD_SH)
    (standins / "flatten.py").write_text(FLATTEN_PY)
    for name, text in (("ubus", UBUS), ("uci", UCI)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    running_flag = tmp_path / "running"
    mdns_file = tmp_path / "run/usbprintd/mdns.json"
    script = tmp_path / "init.d" / "usbprintd"
    script.parent.mkdir()
    # The only edit: the state file path, so the test needs no /var/run.
    script.write_text(INIT_SCRIPT.read_text().replace(
        "MDNS_FILE=/var/run/usbprintd/mdns.json", f"MDNS_FILE={shlex.quote(str(mdns_file))}"))

    def run(action: str, running: bool = True) -> InitRun:
        calls = tmp_path / f"calls-{action}.tsv"
        calls.unlink(missing_ok=True)
        if running:
            running_flag.touch()
        else:
            running_flag.unlink(missing_ok=True)
        env = {**os.environ, "STANDINS": str(standins), "CALLS": str(calls),
               "STANDIN_RUNNING": str(running_flag),
               "UCI_FIRMWARE_DIR": str(run.firmware_dir),
               "PATH": f"{bindir}:{os.environ['PATH']}"}
        result = subprocess.run([SHELL, "sh", str(standins / "rc.common"), str(script), action],
                                env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        assert "WARNING" not in result.stderr
        lines = calls.read_text().splitlines() if calls.exists() else []
        parsed = [Call(fields[0], fields[1], fields[2:])
                  for fields in (line.split("\t") for line in lines)]
        return InitRun(parsed)

    run.mdns_file = mdns_file
    run.firmware_dir = tmp_path / "etc/usbprintd/firmware"
    run.running_flag = running_flag
    return run


def replay(calls: list[Call]) -> list[dict[str, Any]]:
    """The `ubus call service set` messages the calls would have built with the real procd.sh."""
    services: list[dict[str, Any]] = []
    stack: list[Any] = []
    for call in calls:
        name, args = call.function, call.args
        if name.startswith("json_add") or name.startswith("json_close"):
            assert call.namespace == "procd", f"{name} {args} written outside procd's message"
        if name in ("json_load_file", "json_select", "json_get_keys", "json_get_var"):
            assert call.namespace != "procd", f"{name} {args} would clobber procd's message"
        if name == "procd_open_service":
            services.append({"name": args[0], "script": args[1], "instances": {},
                             "triggers": []})
        elif name == "procd_open_instance":
            instances = services[-1]["instances"]
            instance: dict[str, Any] = {}
            instances[args[0] if args else f"instance{len(instances) + 1}"] = instance
            stack = [instance]
        elif name == "procd_set_param":
            stack[0][args[0]] = args[1:]
        elif name == "procd_close_instance":
            assert len(stack) == 1, "unbalanced json objects inside the instance"
            stack = []
        elif name == "procd_add_reload_trigger":
            services[-1]["triggers"].append(["config.change", *args])
        elif name in ("json_add_object", "json_add_array"):
            child: Any = {} if name == "json_add_object" else []
            _put(stack[-1], args[0], child)
            stack.append(child)
        elif name in ("json_close_object", "json_close_array"):
            assert isinstance(stack.pop(), dict if name == "json_close_object" else list)
        elif name == "json_add_string":
            _put(stack[-1], args[0], args[1])
        elif name == "json_add_int":
            _put(stack[-1], args[0], int(args[1]))
    return services


def _put(parent: Any, key: str, value: Any) -> None:
    if isinstance(parent, list):
        parent.append(value)
    else:
        assert key not in parent, f"duplicate key {key}"
        parent[key] = value


LASERJET_1018 = {"MFG": "Hewlett-Packard", "MDL": "HP LaserJet 1018", "CMD": "ACL",
                 "CLS": "PRINTER", "DES": "HP LaserJet 1018"}
LASERJET_1320 = {"MFG": "Hewlett-Packard", "CMD": "PJL,MLC,BIDI-ECP,PCL,POSTSCRIPT,PCLXL",
                 "MDL": "hp LaserJet 1320 series", "CLS": "PRINTER"}


def write_daemon_state(path: Path) -> list:
    """mdns.json exactly as the daemon's UmdnsAnnouncer writes it."""
    records = service_records([
        PrinterAnnouncement("HP LaserJet 1018", 9100, "OpenWrt", LASERJET_1018,
                            admin_url="http://OpenWrt.local:631/"),
        PrinterAnnouncement("Office printer", 9101, "OpenWrt", LASERJET_1320),
    ])
    UmdnsAnnouncer(state_file=path).write_state(records)
    return records


def only_instance(service: dict[str, Any]) -> dict[str, Any]:
    [instance] = service["instances"].values()
    return instance


def test_start_registers_the_daemon_with_respawn_logging_and_a_reload_trigger(run_init) -> None:
    [service] = replay(run_init("start").calls)
    assert service["name"] == "usbprintd"
    instance = only_instance(service)
    assert instance["command"] == ["/usr/bin/usbprintd", "run"]
    assert instance["respawn"] == ["300", "5", "10"]
    assert instance["stdout"] == ["1"]
    assert instance["stderr"] == ["1"]
    assert "data" not in instance  # no mdns.json yet: nothing to announce
    assert service["triggers"] == [["config.change", "usbprintd"]]


def test_start_turns_the_daemons_printer_list_into_umdns_service_data(run_init) -> None:
    records = write_daemon_state(run_init.mdns_file)
    run = run_init("start")
    mdns = only_instance(replay(run.calls)[0])["data"]["mdns"]
    assert list(mdns) == [record.key for record in records]
    first, second = (mdns[record.key] for record in records)
    assert first == {
        "instance": "HP LaserJet 1018 @ OpenWrt",
        "service": "_pdl-datastream._tcp.local",
        "port": 9100,
        "txt": ["txtvers=1", "qtotal=1", "pdl=application/octet-stream",
                "ty=HP LaserJet 1018", "product=(HP LaserJet 1018)", "note=HP LaserJet 1018",
                "priority=50", "usb_MFG=Hewlett-Packard", "usb_MDL=HP LaserJet 1018",
                "usb_CMD=ACL", "adminurl=http://OpenWrt.local:631/"],
    }
    assert second["instance"] == "Office printer @ OpenWrt"
    assert second["port"] == 9101
    assert "pdl=application/vnd.hp-PCL,application/postscript" in second["txt"]
    # the reading namespace is left the way it was found
    assert run.named("json_set_namespace")[-1].args == [""]


def test_an_unreadable_or_empty_printer_list_still_starts_the_daemon(run_init) -> None:
    run_init.mdns_file.parent.mkdir(parents=True)
    for content in ("not json {", json.dumps({"services": []}), json.dumps({"other": 1})):
        run_init.mdns_file.write_text(content)
        instance = only_instance(replay(run_init("start").calls)[0])
        assert instance["command"] == ["/usr/bin/usbprintd", "run"]
        assert "data" not in instance


def test_entries_without_a_usable_port_or_name_are_skipped(run_init) -> None:
    run_init.mdns_file.parent.mkdir(parents=True)
    run_init.mdns_file.write_text(json.dumps({"services": [
        {"name": "No port", "txt": ["txtvers=1"]},
        {"name": "Bad port", "port": "91x0"},
        {"port": 9102},
        {"name": "Minimal", "port": 9103},
    ]}))
    mdns = only_instance(replay(run_init("start").calls)[0])["data"]["mdns"]
    assert mdns == {"usbprintd_9103_4": {"instance": "Minimal", "port": 9103, "txt": [],
                                         "service": "_pdl-datastream._tcp.local"}}


def test_reload_resubmits_the_instance_and_sends_sighup_instead_of_restarting(run_init) -> None:
    write_daemon_state(run_init.mdns_file)
    run = run_init("reload")
    [service] = replay(run.calls)
    assert len(only_instance(service)["data"]["mdns"]) == 2
    assert [c.args for c in run.named("procd_send_signal")] == [["usbprintd", "*", "HUP"]]
    assert run.named("procd_kill") == []


def test_announce_refreshes_the_mdns_data_of_a_running_daemon_only(run_init) -> None:
    write_daemon_state(run_init.mdns_file)
    running = run_init("announce", running=True)
    assert len(only_instance(replay(running.calls)[0])["data"]["mdns"]) == 2
    assert running.named("procd_send_signal") == []
    stopped = run_init("announce", running=False)
    assert replay(stopped.calls) == []  # a stopped service is never started by the daemon


def test_stop_withdraws_the_printers_before_procd_ends_the_daemon(run_init) -> None:
    """umdns announces what running instances carry: the instance is submitted again without
    mDNS data and umdns reloaded while the daemon still runs, then procd ends it. Nothing is
    left running in the background (it would hold the script's lock through a restart)."""
    write_daemon_state(run_init.mdns_file)
    run = run_init("stop")
    assert not run_init.mdns_file.exists()
    order = [c.function for c in run.calls
             if c.function in ("procd_close_instance", "ubus", "procd_kill")]
    assert order == ["procd_close_instance", "ubus", "procd_kill"]
    [service] = replay(run.calls)
    assert "data" not in only_instance(service)
    assert run.named("ubus")[0].args == ["call umdns reload"]


def test_stop_of_a_daemon_that_is_not_running_still_lets_umdns_forget_it(run_init) -> None:
    write_daemon_state(run_init.mdns_file)
    run = run_init("stop", running=False)
    assert replay(run.calls) == []  # nothing submitted: that would start the daemon
    assert [c.args for c in run.named("ubus")] == [["call umdns reload"]]
    assert [c.args[0] for c in run.named("procd_kill")] == ["usbprintd"]


def test_start_makes_the_firmware_directory_the_package_cannot_ship(run_init) -> None:
    assert not run_init.firmware_dir.exists()
    run_init("start")
    assert run_init.firmware_dir.is_dir()


def test_init_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck missing (Debian package shellcheck)")
    result = subprocess.run([shellcheck, str(INIT_SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
