#!/usr/bin/env bash
# Benchmark: create a container from a cached image, rlxc vs LXC 5, same image, one run.
#
#   tests/bench/create.sh [ITERATIONS]        (as root; default 7 iterations)
#
# Both tools start from their own warm cache of the fixture Debian bookworm image
# (tests/fixtures/build-mirror.sh), so this times what a sysadmin waits for on the
# second create: LXC re-runs `tar -xJ` of rootfs.tar.xz; rlxc unpacks its verified,
# decompressed cache. Both work on a fresh ext4 file system made for the run (a loop
# image), runs are interleaved so both see the same machine state, and nothing is removed
# until the end: ext4 slows inode allocation for minutes after mass deletes
# (recently_deleted() scans), which would time an earlier rm, not the create.
# Medians and the ratio are printed.
set -euo pipefail

iterations=${1:-7}
. "$(dirname "$0")/lib.sh"
bench_prelude --only debian

work=$(mktemp -d /var/tmp/rlxc-bench.XXXXXX)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    mountpoint -q "$work" && umount "$work"
    rm -rf "$work" "$(bench_runpath)" "$work.img"
}
trap cleanup EXIT
truncate -s $((2 + iterations))G "$work.img"
mkfs.ext4 -q -F "$work.img"
mount -o loop "$work.img" "$work"

# Serve the fixture mirror on loopback for rlxc's first (cache-filling) create.
serve_mirror

write_rlxc_config </dev/null
"$rlxc" create -q -n warm -t download -d debian -r bookworm -a amd64 >/dev/null
# "warm" stays until the end: a delete now would slow the timed creates (see above).

fill_lxc_cache debian bookworm
export LXC_CACHE_PATH="$work/lxc-cache"


: > "$work/lxc.times"; : > "$work/rlxc.times"
for i in $(seq "$iterations"); do
    sync
    t0=$EPOCHREALTIME
    lxc-create -P "$work/lxc-lib" -n "b$i" -t download -- -d debian -r bookworm -a amd64 --force-cache >/dev/null 2>&1
    t1=$EPOCHREALTIME
    echo "$t1 - $t0" | bc >> "$work/lxc.times"
    [ -f "$work/lxc-lib/b$i/rootfs/etc/os-release" ] || { echo "lxc-create produced no rootfs" >&2; exit 1; }

    sync
    t0=$EPOCHREALTIME
    "$rlxc" create -q -n "b$i" -t download -d debian -r bookworm -a amd64 >/dev/null
    t1=$EPOCHREALTIME
    echo "$t1 - $t0" | bc >> "$work/rlxc.times"
    [ -f "$work/rlxc-lib/b$i/rootfs/etc/os-release" ] || { echo "rlxc-create produced no rootfs" >&2; exit 1; }
    # The rootfs is a plain directory the sysadmin can edit before first start.
    chroot "$work/rlxc-lib/b$i/rootfs" passwd -d root >/dev/null
    printf 'iteration %d: lxc-create %.2f s, rlxc-create %.2f s\n' "$i" "$(tail -1 "$work/lxc.times")" "$(tail -1 "$work/rlxc.times")"
done

lxc_med=$(median < "$work/lxc.times")
rlxc_med=$(median < "$work/rlxc.times")
printf '\ncreate from cache, debian bookworm (%s iterations, medians)\n' "$iterations"
printf '  lxc-create -t download --force-cache : %.3f s\n' "$lxc_med"
printf '  rlxc-create -t download (cached)     : %.3f s\n' "$rlxc_med"
printf '  speed-up: %.1fx (target: at least 5x)\n' "$(echo "$lxc_med / $rlxc_med" | bc -l)"
