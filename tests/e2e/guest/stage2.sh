#!/bin/sh
# PID 1 of the guest after switch_root (see vmharness/init.sh): run the guest tests or a shell,
# save the kernel log to the results share, power off.  QEMU runs with -no-reboot and exits.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
results=/run/e2e
project= mode=pytest timeout=300
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        e2e.project=*) project="${arg#e2e.project=}" ;;
        e2e.mode=*) mode="${arg#e2e.mode=}" ;;
        e2e.timeout=*) timeout="${arg#e2e.timeout=}" ;;
    esac
done
cut -d' ' -f1 /proc/uptime > "$results/stage2.uptime"

busybox ip link set lo up
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t devpts devpts /dev/pts
hostname e2e-guest

export USBPRINTD_E2E_GUEST=1 USBPRINTD_E2E_RESULTS="$results" PYTHONDONTWRITEBYTECODE=1
cd "$project" || busybox poweroff -f
if [ "$mode" = shell ]; then
    echo "e2e guest shell: project $project, results $results; 'exit' powers off."
    echo "  e.g. .venv/bin/python -m pytest -p no:cacheprovider tests/e2e/guest -x"
    setsid busybox cttyhack /bin/bash -i
else
    # Leave a margin inside the host's budget for the kernel log and a clean power-off.
    timeout -k 5 $((timeout - 20)) .venv/bin/python tests/e2e/guest/runner.py \
        > "$results/pytest.log" 2>&1
    echo $? > "$results/pytest.rc"
fi
dmesg > "$results/dmesg.txt"
cut -d' ' -f1 /proc/uptime > "$results/end.uptime"
sync
busybox poweroff -f
