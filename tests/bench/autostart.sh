#!/usr/bin/env bash
# Benchmark: a host's shutdown of its autostart containers, rlxc vs LXC 5, in one run.
#
#   tests/bench/autostart.sh [N] [HALT_SECONDS]   (as root; default 8 containers, 2 s)
#
# N busybox containers per tool, each marked to autostart (rlxc: [autostart] enabled;
# LXC: lxc.start.auto = 1) and each with the same init, a busybox sh script that takes
# HALT_SECONDS to halt once its halt signal (SIGPWR, or SIGUSR1 from the image's config)
# arrives, as tests/autostart.rs makes them. Both are started by their autostart tool,
# then shut down by it: `rlxc-autostart -s -t 30` against `lxc-autostart -s -t 30`.
# rlxc halts them in parallel, LXC one after another: about HALT_SECONDS against about
# N x HALT_SECONDS. One run each; times and the ratio are printed. No network: neither
# side needs one.
set -euo pipefail

n=${1:-8}
halt=${2:-2}
. "$(dirname "$0")/lib.sh"
bench_prelude

bench_workspace autostart
rnames=() lnames=()
for i in $(seq "$n"); do rnames+=("ras$tag-$i"); lnames+=("las$tag-$i"); done
# Not bench_cleanup: no bridge here, so nothing of rlxc-net to stop.
cleanup() {
    local c
    for c in "${rnames[@]}"; do "$rlxc" stop -q -k -n "$c" >/dev/null 2>&1 || true; done
    for c in "${lnames[@]}"; do lxc-stop -P "$work/lxc-lib" -k -n "$c" >/dev/null 2>&1 || true; done
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work" "$(bench_runpath)"
}
trap cleanup EXIT

serve_mirror
write_rlxc_config </dev/null
bb_rel=$(busybox_release)

# The monitor (and LXC's shutdown) may repeat the halt signal: the first one takes the
# trap away, or each would start the wait anew.
slow_init="trap 'trap \"\" USR1 PWR; sleep $halt; exit 0' USR1 PWR; while :; do sleep 1; done"

echo "setting up $n busybox containers for each tool (halting in $halt s each)"
cat > "$work/rlxc-as.toml" <<TOML
[[network]]
type = "empty"
[autostart]
enabled = true
[init]
cmd = ["/bin/sh", "-c", '''$slow_init''']
TOML
mkdir -p "$work/lxc-lib"
for i in $(seq "$n"); do
    "$rlxc" create -q -n "ras$tag-$i" -t download -d busybox -r "$bb_rel" -a amd64 \
        -f "$work/rlxc-as.toml" >/dev/null
    lxc lxc-create -n "las$tag-$i" -t busybox >/dev/null
    dir="$work/lxc-lib/las$tag-$i"
    # The same script as the init; a file, since lxc.init.cmd splits on blanks.
    printf '#!/bin/sh\n%s\n' "$slow_init" > "$dir/rootfs/sbin/slow-init"
    chmod 755 "$dir/rootfs/sbin/slow-init"
    # lxc-busybox's config gets a veth on lxcbr0 from the host's default.conf: none here.
    sed -i '/^lxc\.net\./d; /^lxc\.apparmor\./d; /^lxc\.init\./d' "$dir/config"
    cat >> "$dir/config" <<CONF
lxc.net.0.type = empty
lxc.apparmor.profile = unconfined
lxc.init.cmd = /sbin/slow-init
lxc.start.auto = 1
CONF
done

# Started by each autostart tool, then every container checked running.
"$rlxc" autostart -q >/dev/null
lxc lxc-autostart
for i in $(seq "$n"); do
    lxc lxc-wait -n "las$tag-$i" -s RUNNING -t 30
    s=$("$rlxc" info -s -n "ras$tag-$i" | awk '{print $NF}')
    [ "$s" = RUNNING ] || { echo "ras$tag-$i is $s after rlxc-autostart" >&2; exit 1; }
done
# Their inits have set their traps (a signal before that would end them at once).
sleep 1

echo "shutting down $n containers that take $halt s each to halt, one run each"
t0=$EPOCHREALTIME
"$rlxc" autostart -q -s -t 30 >/dev/null
rt=$(elapsed "$t0")
t0=$EPOCHREALTIME
lxc lxc-autostart -s -t 30
lt=$(elapsed "$t0")

# Each halted by its init, none left running.
for i in $(seq "$n"); do
    s=$("$rlxc" info -s -n "ras$tag-$i" | awk '{print $NF}')
    [ "$s" = STOPPED ] || { echo "ras$tag-$i is $s after rlxc-autostart -s" >&2; exit 1; }
    s=$(lxc lxc-info -s -n "las$tag-$i" | awk '{print $NF}')
    [ "$s" = STOPPED ] || { echo "las$tag-$i is $s after lxc-autostart -s" >&2; exit 1; }
done

printf '   rlxc-autostart -s -t 30: %.2f s   lxc-autostart -s -t 30: %.2f s   rlxc/LXC = %.3f\n' \
    "$rt" "$lt" "$(ratio "$rt" "$lt")"
printf '   (%d containers x %d s halt: %d s one by one)\n' "$n" "$halt" "$((n * halt))"
