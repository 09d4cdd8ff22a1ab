#!/bin/busybox sh
# /init of the guest's initramfs: load virtio + 9p, mount the host root read-only with tmpfs on
# the writable places, mount the project and the results share, then hand PID 1 to stage 2.
# Kernel command line: e2e.project=<absolute host path of the repository> e2e.mode=pytest|shell
/bin/busybox --install -s /bin
export PATH=/bin

fail() {
    echo "e2e-init: $*" >&2
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

for module in $(cat /etc/modules.boot); do
    insmod "/lib/modules/$module" || fail "insmod $module"
done

project=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        e2e.project=*) project="${arg#e2e.project=}" ;;
    esac
done
[ -n "$project" ] || fail "no e2e.project= on the kernel command line"

p9="trans=virtio,version=9p2000.L,msize=262144"
mkdir -p /newroot
mount -t 9p -o "$p9,ro,cache=loose" hostroot /newroot || fail "mount hostroot"
for dir in run tmp var/tmp root; do
    mount -t tmpfs -o mode=0755 tmpfs "/newroot/$dir" || fail "tmpfs on /$dir"
done
chmod 1777 /newroot/tmp /newroot/var/tmp
# A project under /tmp (a fresh clone) is hidden by the tmpfs: its mount point is created there.
mkdir -p "/newroot$project" 2>/dev/null
mount -t 9p -o "$p9,ro,cache=loose" project "/newroot$project" || fail "mount project"
mkdir -p /newroot/run/e2e
mount -t 9p -o "$p9,cache=none" results /newroot/run/e2e || fail "mount results"

mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
exec switch_root /newroot "$project/tests/e2e/guest/stage2.sh"
