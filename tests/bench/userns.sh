#!/usr/bin/env bash
# Benchmark: unprivileged against privileged rlxc containers, same images, one run.
#
#   tests/bench/userns.sh [CYCLES]        (as root; default 20)
#
#  1. create from a warm cache, busybox and Debian: unprivileged (an [idmap] slice, no
#     chown) against privileged (target: as fast)
#  2. busybox `start -d` + `stop -k` cycles, interleaved (target: unprivileged <= 1.2x)
#  3. Debian to `systemctl is-system-running` = running, after one untimed first boot
#     each (target: no slower)
# Root's ids come from subuid/subgid files of the run's own (rlxc.toml `[idmap]`), so the
# host's /etc/subuid is not touched. No LXC side: this compares rlxc with itself.
set -euo pipefail

cycles=${1:-20}
. "$(dirname "$0")/lib.sh"
bench_prelude

work=$(mktemp -d /var/tmp/rlxc-bench-userns.XXXXXX)
chmod 755 "$work"
server_pid=
trap 'for n in bbp bbu debp debu; do "$rlxc" stop -q -k -n $n >/dev/null 2>&1 || true; done; [ -n "$server_pid" ] && kill "$server_pid"; rm -rf "$work" "$(bench_runpath)"' EXIT
serve_mirror
write_rlxc_config < <(run_subids)
printf '[[network]]\ntype = "empty"\n' > "$work/priv.toml"
printf '[[network]]\ntype = "empty"\n[idmap]\n' > "$work/unpriv.toml"
ratio() { echo "$1 / $2" | bc -l; }

# Warm both caches with a throwaway create each.
"$rlxc" create -q -n warm1 -t download -d busybox -r "$(awk -F';' '$1=="busybox"{print $2; exit}' "$fixtures/mirror/meta/1.0/index-system")" -f "$work/priv.toml" >/dev/null
bbrel=$(awk -F';' '$1=="busybox"{print $2; exit}' "$fixtures/mirror/meta/1.0/index-system")
"$rlxc" create -q -n warm2 -t download -d debian -r bookworm -f "$work/priv.toml" >/dev/null

echo "1. create from a warm cache"
for img in "busybox $bbrel bb" "debian bookworm deb"; do
    set -- $img
    : > "$work/p.t"; : > "$work/u.t"
    for i in 1 2 3 4 5; do
        sync; t=$(stamp); "$rlxc" create -q -n "$3p$i" -t download -d "$1" -r "$2" -f "$work/priv.toml" >/dev/null; elapsed "$t" >> "$work/p.t"
        sync; t=$(stamp); "$rlxc" create -q -n "$3u$i" -t download -d "$1" -r "$2" -f "$work/unpriv.toml" >/dev/null; elapsed "$t" >> "$work/u.t"
    done
    p=$(median < "$work/p.t"); u=$(median < "$work/u.t")
    printf '   %-8s privileged %.3f s   unprivileged %.3f s   ratio %.2f   (target: as fast)\n' "$1" "$p" "$u" "$(ratio "$u" "$p")"
done
grep -q '^\[idmap\]' "$work/rlxc-lib/bbu1/config.toml" || { echo "the unprivileged create has no [idmap]" >&2; exit 1; }

echo "2. busybox start -d + stop -k, $cycles cycles each, interleaved"
: > "$work/p.t"; : > "$work/u.t"
for _ in $(seq "$cycles"); do
    t=$(stamp); "$rlxc" start -q -d -n bbp1; "$rlxc" stop -q -k -n bbp1; elapsed "$t" >> "$work/p.t"
    t=$(stamp); "$rlxc" start -q -d -n bbu1; "$rlxc" stop -q -k -n bbu1; elapsed "$t" >> "$work/u.t"
done
p=$(median < "$work/p.t"); u=$(median < "$work/u.t")
printf '   privileged %.1f ms   unprivileged %.1f ms   ratio %.2f   (target <= 1.2)\n' "$(echo "$p * 1000" | bc)" "$(echo "$u * 1000" | bc)" "$(ratio "$u" "$p")"

echo "3. Debian boot to running, 5 boots each after one untimed first boot"
boot debp1 >/dev/null; boot debu1 >/dev/null
: > "$work/p.t"; : > "$work/u.t"
for _ in 1 2 3 4 5; do boot debp1 >> "$work/p.t"; boot debu1 >> "$work/u.t"; done
p=$(median < "$work/p.t"); u=$(median < "$work/u.t")
printf '   privileged %.2f s   unprivileged %.2f s   ratio %.2f   (target <= 1.0, noise aside)\n' "$p" "$u" "$(ratio "$u" "$p")"
