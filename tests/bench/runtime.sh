#!/usr/bin/env bash
# Benchmark: the runtime, rlxc vs LXC 5 on the same fixture images, in one run.
#
#   tests/bench/runtime.sh [CYCLES]        (as root; default 20 cycles)
#
#  1. busybox: `start -d` + `stop -k` cycles        (target: rlxc at most 0.2x LXC),
#     a) interleaved with LXC's, b) each tool's back to back, as a sysadmin's loop
#  2. busybox: `attach -- /bin/true`                (target: no slower than lxc-attach)
#  3. Debian bookworm: start until `systemctl is-system-running` says running
#                                                   (target: no slower than LXC)
#  4. monitor memory per running container          (target: at most 2 MiB)
# Both tools get the same images (LXC's cache is filled from the fixture mirror) and one
# veth each on the same rlxc-managed test bridge (its own name and subnet, never virbr0;
# DHCP from its dnsmasq). Runs are interleaved; medians and ratios are printed.
set -euo pipefail

cycles=${1:-20}
. "$(dirname "$0")/lib.sh"
bench_prelude

bench_bridge_workspace rt rlxr 232
bb_r="rbb$tag" deb_r="rdeb$tag" bb_l="lbb$tag" deb_l="ldeb$tag"
trap 'bench_cleanup "$bb_r" "$deb_r" -- "$bb_l" "$deb_l"' EXIT

serve_mirror

bridge_configs
"$rlxc" net start -q
index="$fixtures/mirror/meta/1.0/index-system"
bb_rel=$(awk -F';' '$1=="busybox" {print $2}' "$index")

setup_image() { # dist release rlxc-name lxc-name
    local dist=$1 rel=$2
    "$rlxc" create -q -n "$3" -t download -d "$dist" -r "$rel" -a amd64 -f "$work/rlxc-net.toml" >/dev/null
    fill_lxc_cache "$dist" "$rel"
    LXC_CACHE_PATH="$work/lxc-cache" lxc-create -P "$work/lxc-lib" -n "$4" -f "$work/lxc.conf" \
        -t download -- -d "$dist" -r "$rel" -a amd64 --force-cache >/dev/null
}
setup_image busybox "$bb_rel" "$bb_r" "$bb_l"
setup_image debian bookworm "$deb_r" "$deb_l"

# The names a sysadmin types (the multi-call binary dispatches on them).
mkdir -p "$work/bin"
for c in start stop; do ln -sf "$rlxc" "$work/bin/rlxc-$c"; done
lxc_cycle() { lxc lxc-start -n "$bb_l" -d; lxc lxc-wait -n "$bb_l" -s RUNNING; lxc lxc-stop -n "$bb_l" -k; }
rlxc_cycle() { "$work/bin/rlxc-start" -d -n "$bb_r" 2>/dev/null; "$work/bin/rlxc-stop" -k -n "$bb_r" 2>/dev/null; }

echo "1. busybox start -d + stop -k, $cycles cycles each"
# a) interleaved: each rlxc cycle right after an LXC one, so both see the same machine.
: > "$work/r1"; : > "$work/l1"
for _ in $(seq "$cycles"); do
    t0=$EPOCHREALTIME; lxc_cycle; t1=$EPOCHREALTIME
    echo "$t1 - $t0" | bc >> "$work/l1"
    t0=$EPOCHREALTIME; rlxc_cycle; t1=$EPOCHREALTIME
    echo "$t1 - $t0" | bc >> "$work/r1"
done
l1=$(median < "$work/l1"); r1=$(median < "$work/r1")
printf '   a) interleaved:      LXC %.3f s   rlxc %.3f s   rlxc/LXC = %.2f (target <= 0.2)\n' "$l1" "$r1" "$(ratio "$r1" "$l1")"
# b) as a sysadmin's loop runs them: each tool's cycles back to back, so each pays for
# the kernel work its own previous stop left behind (a dying network namespace, freed
# veths), and through the rlxc-start/rlxc-stop names, without -q.
: > "$work/r1b"; : > "$work/l1b"
for _ in $(seq "$cycles"); do
    t0=$EPOCHREALTIME; lxc_cycle; t1=$EPOCHREALTIME; echo "$t1 - $t0" | bc >> "$work/l1b"
done
for _ in $(seq "$cycles"); do
    t0=$EPOCHREALTIME; rlxc_cycle; t1=$EPOCHREALTIME; echo "$t1 - $t0" | bc >> "$work/r1b"
done
l1b=$(median < "$work/l1b"); r1b=$(median < "$work/r1b")
printf '   b) back to back:     LXC %.3f s   rlxc %.3f s   rlxc/LXC = %.2f (target <= 0.2)\n' "$l1b" "$r1b" "$(ratio "$r1b" "$l1b")"

echo "2. busybox attach -- /bin/true, $cycles runs each"
# Warm up until both answer: LXC sometimes loses a container started right after a kill.
ready() { for _ in $(seq 100); do "$@" /bin/true >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
for _ in 1 2 3; do
    lxc lxc-start -n "$bb_l" -d >/dev/null 2>&1 || true
    lxc lxc-wait -n "$bb_l" -s RUNNING -t 5 >/dev/null 2>&1 || true
    ready lxc-attach -P "$work/lxc-lib" -n "$bb_l" -- && break
done
"$rlxc" start -q -d -n "$bb_r"
ready "$rlxc" attach -n "$bb_r" --
: > "$work/r2"; : > "$work/l2"
for _ in $(seq "$cycles"); do
    t0=$EPOCHREALTIME; lxc lxc-attach -n "$bb_l" -- /bin/true; t1=$EPOCHREALTIME; echo "$t1 - $t0" | bc >> "$work/l2"
    t0=$EPOCHREALTIME; "$rlxc" attach -n "$bb_r" -- /bin/true; t1=$EPOCHREALTIME; echo "$t1 - $t0" | bc >> "$work/r2"
done
l2=$(median < "$work/l2"); r2=$(median < "$work/r2")
printf '   LXC %.4f s   rlxc %.4f s   rlxc/LXC = %.2f (target <= 1)\n' "$l2" "$r2" "$(ratio "$r2" "$l2")"

echo "4. monitor memory (busybox running under each, idle 3 s after the last request)"
sleep 3
rpid=$(pgrep -f "^\[rlxc monitor\] $bb_r " | head -1)
lpid=$(pgrep -f "^\[lxc monitor\].* $bb_l" | head -1 || true)
kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/smaps_rollup"; }
printf '   rlxc monitor: RSS %s KiB, PSS %s KiB, private anonymous %s KiB (target: <= 2048 KiB)\n' \
    "$(kb "$rpid" Rss)" "$(kb "$rpid" Pss)" "$(kb "$rpid" Anonymous)"
[ -n "$lpid" ] && printf '   LXC monitor:  RSS %s KiB, PSS %s KiB, private anonymous %s KiB\n' \
    "$(kb "$lpid" Rss)" "$(kb "$lpid" Pss)" "$(kb "$lpid" Anonymous)"
lxc lxc-stop -n "$bb_l" -k; "$rlxc" stop -q -k -n "$bb_r"

runs=$(( cycles < 5 ? cycles : 5 ))
echo "3. Debian bookworm: start until systemctl is-system-running = running, $runs runs each"
until_running() { # command prefix…
    local s
    for _ in $(seq 1200); do
        s=$("$@" systemctl is-system-running 2>/dev/null || true)
        case $s in running) return 0 ;; degraded) echo "degraded!" >&2; return 1 ;; esac
        sleep 0.05
    done
    return 1
}
: > "$work/r3"; : > "$work/l3"
for _ in $(seq "$runs"); do
    t0=$EPOCHREALTIME; lxc lxc-start -n "$deb_l" -d; until_running lxc-attach -P "$work/lxc-lib" -n "$deb_l" --; t1=$EPOCHREALTIME
    echo "$t1 - $t0" | bc >> "$work/l3"; lxc lxc-stop -n "$deb_l" -k
    t0=$EPOCHREALTIME; "$rlxc" start -q -d -n "$deb_r"; until_running "$rlxc" attach -n "$deb_r" --; t1=$EPOCHREALTIME
    echo "$t1 - $t0" | bc >> "$work/r3"; "$rlxc" stop -q -k -n "$deb_r"
done
l3=$(median < "$work/l3"); r3=$(median < "$work/r3")
printf '   LXC %.2f s   rlxc %.2f s   rlxc/LXC = %.2f (target <= 1)\n' "$l3" "$r3" "$(ratio "$r3" "$l3")"
