#!/usr/bin/env bash
# Benchmark: the templates, rlxc vs LXC 5 on the same work, one run, ratios printed.
#
#   tests/bench/templates.sh [ITERATIONS]        (as root; default 5)
#
#  1. -t busybox: rlxc's templates/rlxc-busybox vs lxc-create -t busybox (target <= 0.1x)
#  2. -t local with the fixture's Debian image files vs lxc-create -t local (target <= 0.3x)
#  3. -t debian, second create (each tool's own debootstrap cache warm) vs
#     lxc-create -t debian (target <= 0.2x). The first run of each debootstraps from the
#     host's Debian mirror (minutes, the only network this benchmark uses); later runs of
#     the script reuse LXC's cache in /var/cache/lxc/debian and rlxc's in $work. Skip it
#     with SKIP_DEBIAN=1 when offline; it then says so and prints no ratio for it.
# Both tools write to one fresh ext4 loop file system; runs are interleaved; nothing is
# removed until the end (see create.sh for why).
set -euo pipefail

iterations=${1:-5}
. "$(dirname "$0")/lib.sh"
bench_prelude --only debian

work=$(mktemp -d /var/tmp/rlxc-bench-tpl.XXXXXX)
server_pid=
cleanup() {
    # A file system mounted a moment ago can still be busy (ext4's lazy init): detach it.
    mountpoint -q "$work" && { umount "$work" 2>/dev/null || umount -l "$work"; }
    rm -rf "$work" "$(bench_runpath)" "$work.img"
}
trap cleanup EXIT
truncate -s $((4 + 2 * iterations))G "$work.img"
mkfs.ext4 -q -F "$work.img"
mount -o loop "$work.img" "$work"
chmod 755 "$work"

cat > "$work/rlxc.toml" <<TOML
lxcpath = "$work/rlxc-lib"
cachepath = "$work/rlxc-cache"
runpath = "$work/rlxc-run"
templates_path = ["$repo/templates"]
TOML
export RLXC_CONFIG="$work/rlxc.toml"
printf '[[network]]\ntype = "empty"\n' > "$work/nonet.toml"
mkdir -p "$work/lxc-lib"
ratio() { echo "$1 / $2" | bc -l; }

# time_both LABEL LXC-CMD… :: RLXC-CMD…  (each with %i for the iteration)
time_both() {
    local label=$1 i lxc=() rl=() side=lxc a
    shift
    for a in "$@"; do
        if [ "$a" = :: ]; then side=rlxc; continue; fi
        if [ $side = lxc ]; then lxc+=("$a"); else rl+=("$a"); fi
    done
    : > "$work/$label.lxc"; : > "$work/$label.rlxc"
    for i in $(seq "$iterations"); do
        sync
        t0=$EPOCHREALTIME; "${lxc[@]//%i/$i}" >/dev/null 2>&1; t1=$EPOCHREALTIME
        echo "$t1 - $t0" | bc >> "$work/$label.lxc"
        sync
        t0=$EPOCHREALTIME; "${rl[@]//%i/$i}" >/dev/null; t1=$EPOCHREALTIME
        echo "$t1 - $t0" | bc >> "$work/$label.rlxc"
    done
    local l r
    l=$(median < "$work/$label.lxc"); r=$(median < "$work/$label.rlxc")
    printf '   LXC %.3f s   rlxc %.3f s   rlxc/LXC = %.2f' "$l" "$r" "$(ratio "$r" "$l")"
}

echo "1. -t busybox, $iterations creates each"
time_both busybox lxc-create -P "$work/lxc-lib" -n bb%i -t busybox \
    :: "$rlxc" create -q -n bb%i -t busybox -f "$work/nonet.toml"
echo " (target <= 0.1)"
[ -x "$work/rlxc-lib/bb1/rootfs/bin/busybox" ] || { echo "rlxc made no busybox rootfs" >&2; exit 1; }

echo "2. -t local, the fixture's Debian bookworm image files, $iterations creates each"
index="$fixtures/mirror/meta/1.0/index-system"
dpath=$(awk -F';' '$1=="debian" && $2=="bookworm" && $3=="amd64" && $4=="default" {print $6}' "$index")
meta="$fixtures/mirror$dpath/meta.tar.xz" fstree="$fixtures/mirror$dpath/rootfs.tar.xz"
time_both local lxc-create -P "$work/lxc-lib" -n loc%i -t local -- --metadata "$meta" --fstree "$fstree" \
    :: "$rlxc" create -q -n loc%i -t local -f "$work/nonet.toml" -- --metadata "$meta" --fstree "$fstree"
echo " (target <= 0.3)"
[ -f "$work/rlxc-lib/loc1/rootfs/etc/os-release" ] || { echo "rlxc made no Debian rootfs" >&2; exit 1; }

echo "3. -t debian (bookworm), second create from each tool's cache"
if [ -n "${SKIP_DEBIAN:-}" ]; then
    echo "   skipped (SKIP_DEBIAN set): no ratio for -t debian in this run"
    exit 0
fi
echo "   warming both caches (debootstrap; minutes the first time)"
lxc-create -P "$work/lxc-lib" -n debwarm -t debian -- -r bookworm >/dev/null 2>&1 \
    || { echo "lxc-create -t debian failed (no network to the Debian archive?)" >&2; exit 1; }
"$rlxc" create -q -n debwarm -t debian -f "$work/nonet.toml" -- -r bookworm >/dev/null
time_both debian lxc-create -P "$work/lxc-lib" -n deb%i -t debian -- -r bookworm \
    :: "$rlxc" create -q -n deb%i -t debian -f "$work/nonet.toml" -- -r bookworm
echo " (target <= 0.2)"
