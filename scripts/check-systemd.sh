#!/usr/bin/env bash
# Checks the systemd integration shipped in systemd/ without needing systemd as PID 1:
#
#   1. systemd-analyze verify — in a throw-away root holding the distribution's units, the unit, and
#      stand-ins for every program its Exec*= lines name (so "not executable" means a typo, not a
#      missing install). verify exits 0 on most mistakes, so ANY output is a failure.
#   2. systemd-sysusers + systemd-tmpfiles --create in the same root: both snippets parse, and the
#      maintenance directory comes out as 2770 ballast:ballast-admin (and ballast is in ballast-admin).
#   3. systemd-analyze security --offline=yes — prints "exposure score: N" and fails above MAX_EXPOSURE.
#
# Exit 0 when everything holds; 1 with the reasons otherwise; 2 when systemd-analyze is missing
# (Debian: apt-get install systemd; scripts/test-deps.sh does it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
unit="$here/systemd/ballast.service"
sysusers="$here/systemd/ballast.sysusers.conf"
tmpfiles="$here/systemd/ballast.tmpfiles.conf"
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}

for cmd in systemd-analyze systemd-sysusers systemd-tmpfiles; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "check-systemd: $cmd not found (Debian package systemd)" >&2; exit 2; }
done

root=$(mktemp -d "${TMPDIR:-/tmp}/ballast-systemd-check.XXXXXX")
trap 'rm -rf "$root"' EXIT
failed=0
fail() { echo "check-systemd: FAIL: $*" >&2; failed=1; }

# ---- 1. verify -------------------------------------------------------------------------------------
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/etc/sysusers.d" "$root/etc/tmpfiles.d"
# The distribution's units (targets the unit is ordered after or wanted by).
for d in /usr/lib/systemd/system /lib/systemd/system; do
  if [ -d "$d" ]; then cp -a "$d" "$root/usr/lib/systemd/"; break; fi
done
cp "$unit" "$root/etc/systemd/system/ballast.service"
# Stand-ins for the programs of ExecStart=, ExecReload=, … (the first absolute path of each line,
# after systemd's optional -@:+! prefixes).
grep -E '^Exec[A-Za-z]*=' "$unit" | sed -E 's/^[^=]+=[-@:+!]*//; s/[[:space:]].*$//' | sort -u | while read -r prog; do
  case "$prog" in /*) mkdir -p "$root$(dirname "$prog")"; printf '#!/bin/sh\nexit 0\n' >"$root$prog"; chmod 0755 "$root$prog" ;; esac
done
verify_out=$(systemd-analyze verify --man=no --root="$root" ballast.service 2>&1) || fail "systemd-analyze verify exited $?"
if [ -n "$verify_out" ]; then
  printf '%s\n' "$verify_out" >&2
  fail "systemd-analyze verify printed output (it must print nothing)"
else
  echo "verify: clean"
fi

# ---- 2. sysusers and tmpfiles ------------------------------------------------------------------------
cp "$sysusers" "$root/etc/sysusers.d/ballast.conf"
cp "$tmpfiles" "$root/etc/tmpfiles.d/ballast.conf"
if ! out=$(systemd-sysusers --root="$root" ballast.conf 2>&1); then
  printf '%s\n' "$out" >&2
  fail "systemd-sysusers rejected ballast.sysusers.conf"
fi
if ! out=$(systemd-tmpfiles --root="$root" --create ballast.conf 2>&1) || [ -n "$out" ]; then
  printf '%s\n' "$out" >&2
  fail "systemd-tmpfiles rejected ballast.tmpfiles.conf (or printed warnings)"
fi
uid=$(awk -F: '$1=="ballast"{print $3}' "$root/etc/passwd" 2>/dev/null || true)
gid=$(awk -F: '$1=="ballast"{print $3}' "$root/etc/group" 2>/dev/null || true)
admin_gid=$(awk -F: '$1=="ballast-admin"{print $3}' "$root/etc/group" 2>/dev/null || true)
admin_members=$(awk -F: '$1=="ballast-admin"{print $4}' "$root/etc/group" 2>/dev/null || true)
[ -n "$uid" ] && [ -n "$gid" ] && [ -n "$admin_gid" ] || fail "sysusers did not create user ballast and groups ballast, ballast-admin"
case ",$admin_members," in *,ballast,*) ;; *) fail "ballast is not a member of ballast-admin (it could not read admins' flag files)" ;; esac
if [ -d "$root/var/lib/ballast/maintenance" ]; then
  got=$(stat -c '%a %u %g' "$root/var/lib/ballast/maintenance")
  [ "$got" = "2770 $uid $admin_gid" ] || fail "maintenance directory is '$got' (mode uid gid), expected '2770 $uid $admin_gid'"
  got=$(stat -c '%a %u' "$root/var/lib/ballast")
  [ "$got" = "711 $uid" ] || fail "/var/lib/ballast is '$got' (mode uid), expected '711 $uid'"
  echo "sysusers/tmpfiles: ok (maintenance 2770 ballast:ballast-admin)"
else
  fail "tmpfiles did not create /var/lib/ballast/maintenance"
fi

# ---- 3. security score -------------------------------------------------------------------------------
sec_out=$(systemd-analyze security --offline=yes --root="$root" ballast.service 2>&1) || true
score=$(printf '%s\n' "$sec_out" | sed -nE 's/.*Overall exposure level for ballast\.service: ([0-9]+(\.[0-9]+)?).*/\1/p' | tail -n1)
if [ -z "$score" ]; then
  printf '%s\n' "$sec_out" >&2
  fail "could not read the exposure score from systemd-analyze security"
else
  echo "exposure score: $score (max $MAX_EXPOSURE)"
  if awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s > m) }'; then
    printf '%s\n' "$sec_out" | grep -E '^✗' >&2 || true
    fail "exposure score $score is above $MAX_EXPOSURE"
  fi
fi

[ "$failed" -eq 0 ] && echo "check-systemd: ok"
exit "$failed"
