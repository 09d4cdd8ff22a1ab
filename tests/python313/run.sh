#!/usr/bin/env bash
# The unit and integration layers on Python 3.13, the interpreter of OpenWrt 25.12: Debian 13
# (trixie) is bootstrapped once into tests/python313/.cache/trixie, and the tests run in a chroot
# of it, inside a private mount namespace (every mount ends with this script).
#
# The .ipk tests are left out: that package is the 24.10 one, byte-code for Python 3.11.
# Needs root and debootstrap (`make test-py313` installs it). Extra arguments go to pytest.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache="$here/.cache"
root="$cache/trixie"
# What `make test-deps` installs on the host, less what only the e2e and browser layers use.
packages="python3-venv python3-setuptools python3-wheel netcat-openbsd curl iproute2 procps socat
	kmod cups avahi-daemon avahi-utils dbus-daemon busybox-static shellcheck"

if [ "$(id -u)" != 0 ]; then
	echo "$0: needs root (debootstrap, chroot, network namespaces)" >&2
	exit 2
fi

# Run a shell script in the chroot, with /proc, /sys, /dev and a fresh /run and /tmp.
# `ip netns` needs / to be a mount point it can make a slave of: the root is bound onto itself.
in_chroot() {
	# shellcheck disable=SC2016  # expanded by the inner shell
	unshare --mount --propagation private -- /bin/bash -c '
		set -e
		root=$1; shift
		mount --bind "$root" "$root"
		mount -t proc proc "$root/proc"
		mount --rbind /sys "$root/sys"
		mount --rbind /dev "$root/dev"
		mount -t tmpfs tmpfs "$root/run"
		mount -t tmpfs tmpfs "$root/tmp"
		exec chroot "$root" /bin/bash -c "$@"
	' in-chroot "$1" "${@:2}"
}

if [ ! -x "$root/usr/bin/python3" ]; then
	echo "bootstrapping Debian 13 into $root (a few minutes, once)"
	rm -rf "$root"
	mkdir -p "$cache"
	debootstrap --variant=minbase --include=python3,ca-certificates trixie "$root" \
		http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 ||
		{ tail -20 "$cache/debootstrap.log" >&2; rm -rf "$root"; exit 1; }
	# No daemon of the packages may start inside the chroot.
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod +x "$root/usr/sbin/policy-rc.d"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
if [ "$(cat "$root/.packages" 2>/dev/null)" != "$packages" ]; then
	# shellcheck disable=SC2086  # the list is split into packages on purpose
	in_chroot "$root" 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null' \
		apt $packages
	printf '%s' "$packages" >"$root/.packages"
fi

# The tree as it is now, tracked and new files alike (not what a commit holds).
rm -rf "$root/root/usbprintd"
mkdir -p "$root/root/usbprintd"
git -C "$repo" ls-files -z --cached --others --exclude-standard |
	(cd "$repo" && tar --null --files-from=- -cf -) |
	tar -C "$root/root/usbprintd" -xf -
# pip reaches PyPI through the same certificate authorities as the host.
cp /etc/ssl/certs/ca-certificates.crt "$root/root/host-ca.crt"

# shellcheck disable=SC2016  # expanded inside the chroot
in_chroot "$root" '
	set -e
	export PIP_CERT=/root/host-ca.crt SSL_CERT_FILE=/root/host-ca.crt
	export PIP_DISABLE_PIP_VERSION_CHECK=1 USBPRINTD_NETWORK_TESTS=1
	[ -x /root/venv/bin/python ] || python3 -m venv /root/venv
	cd /root/usbprintd
	/root/venv/bin/pip install -q -e ".[test]"
	/root/venv/bin/python --version
	/root/venv/bin/python -m pytest -q -p no:cacheprovider \
		--ignore=tests/integration/test_ipk.py tests/unit tests/integration "$@"
' python313 "$@"
