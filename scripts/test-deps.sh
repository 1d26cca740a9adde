#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, when they are missing (root: apt-get; otherwise says what to run).
set -euo pipefail
# command → Debian package providing it
declare -A NEED=(
  [g++]=g++
  [make]=make
  [python3]=python3
  [systemd-analyze]=systemd        # verify the unit and rate its hardening
  [promtool]=prometheus            # check /metrics and the alert rules
  [chromium]=chromium              # end-to-end test of the status page
  [pkg-config]=pkg-config          # finds libvirt for the native binding
  # the real libvirt lab (test/lab): hosts, guests and per-host sshd
  [virsh]=libvirt-clients
  [libvirtd]="libvirt-daemon libvirt-daemon-driver-qemu"
  [qemu-system-x86_64]=qemu-system-x86
  [qemu-img]=qemu-utils
  [nasm]=nasm                      # assembles the lab's guest kernel
  [sshd]=openssh-server
  [bindfs]=bindfs                  # the lab's shared folder (a FUSE mount libvirt treats as cluster storage)
)
# libvirtd and sshd live in sbin, which a non-root PATH may lack
PATH="$PATH:/usr/sbin:/sbin"
missing=()
for cmd in "${!NEED[@]}"; do
  # shellcheck disable=SC2206 # a value may name several packages
  command -v "$cmd" >/dev/null 2>&1 || missing+=(${NEED[$cmd]})
done
# Headers and library the libvirt binding builds against (a library, not a command).
{ command -v pkg-config >/dev/null 2>&1 && pkg-config --exists libvirt; } || missing+=(libvirt-dev)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: missing Debian packages: ${missing[*]} — run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "test-deps: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
