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
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: missing Debian packages: ${missing[*]} — run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "test-deps: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
