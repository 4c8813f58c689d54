#!/usr/bin/env bash
# Benchmark: the storage layer, rlxc vs LXC 5 on the same work, one run, ratios printed.
#
#   tests/bench/storage.sh [ITERATIONS]        (as root; default 5)
#
#  1. create from a cached image: rlxc-create -B overlay (the image's tree unpacked once,
#     shared) vs lxc-create -t download --force-cache (target: <= 50 ms and <= 0.05x)
#  2. a copy-on-write clone of a stopped Debian container: rlxc-copy -s vs
#     lxc-copy -s -B overlayfs (target <= 0.5x)
#  3. a full copy of that container: rlxc-copy vs lxc-copy (rsync) (target <= 0.7x)
#  4. rlxc-export + rlxc-import of it, throughput in MB/s of the tree (LXC has no export)
#  5. systemd boot to `running`, the same image on overlay vs on dir, after one untimed
#     first boot each (target: overlay no slower); no LXC side: rlxc's two stores
# All on the fixture Debian bookworm image, on a fresh ext4 file system made for the run
# (a loop image), each timed pair interleaved so both tools see the same machine state.
set -euo pipefail

iterations=${1:-5}
. "$(dirname "$0")/lib.sh"
bench_prelude --only debian

work=$(mktemp -d /var/tmp/rlxc-bench-storage.XXXXXX)
server_pid=
cleanup() {
    for n in $(ls "$work/rlxc-lib" 2>/dev/null); do "$rlxc" stop -q -k -n "$n" >/dev/null 2>&1 || true; done
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    mountpoint -q "$work" && umount "$work"
    rm -rf "$work" "$(bench_runpath)" "$work.img"
}
trap cleanup EXIT
truncate -s $((6 + 3 * iterations))G "$work.img"
mkfs.ext4 -q -F "$work.img"
mount -o loop "$work.img" "$work"
serve_mirror
# New containers are unprivileged: root's ids from files of the run's own.
write_rlxc_config < <(run_subids)
fill_lxc_cache debian bookworm
export LXC_CACHE_PATH="$work/lxc-cache"
lxc() { local cmd=$1; shift; "$cmd" -P "$work/lxc-lib" "$@"; }
ratio() { echo "$1 / $2" | bc -l; }

# time_pair LABEL TARGET "LXC-CMD with %i" "RLXC-CMD with %i": interleaved, medians, ratio.
time_pair() {
    local label=$1 target=$2 lcmd=$3 rcmd=$4 t i
    : > "$work/l.times"; : > "$work/r.times"
    for i in $(seq "$iterations"); do
        sync
        t=$(stamp); eval "${lcmd//%i/$i}" >/dev/null 2>&1 || { echo "$label: LXC failed: ${lcmd//%i/$i}" >&2; exit 1; }
        elapsed "$t" >> "$work/l.times"
        sync
        t=$(stamp); eval "${rcmd//%i/$i}" >/dev/null || { echo "$label: rlxc failed: ${rcmd//%i/$i}" >&2; exit 1; }
        elapsed "$t" >> "$work/r.times"
    done
    local l r
    l=$(median < "$work/l.times"); r=$(median < "$work/r.times")
    printf '   LXC %.3f s   rlxc %.3f s   rlxc/LXC = %.3f   (target %s)\n' "$l" "$r" "$(ratio "$r" "$l")" "$target"
}

# rlxc's cache and shared lower filled once, as a sysadmin's first create does.
"$rlxc" create -q -n warm -B overlay -t download -d debian -r bookworm -a amd64 >/dev/null

echo "1. create from a cached image, debian bookworm, $iterations creates each"
time_pair create "<= 50 ms and <= 0.05x" \
    'lxc lxc-create -n c%i -t download -- -d debian -r bookworm -a amd64 --force-cache' \
    '"$rlxc" create -q -n c%i -B overlay -t download -d debian -r bookworm -a amd64'

# The source of the copies: a container each, made as a sysadmin makes one (dir).
lxc lxc-create -n src -t download -- -d debian -r bookworm -a amd64 --force-cache >/dev/null 2>&1
"$rlxc" create -q -n src -t download -d debian -r bookworm -a amd64 >/dev/null

echo "2. copy-on-write clone of a stopped Debian container, $iterations clones each"
time_pair clone "<= 0.5x" \
    'lxc lxc-copy -n src -N s%i -s -B overlayfs' \
    '"$rlxc" copy -q -s -n src -N s%i'

# A full copy needs a dir source on both sides (rlxc's src is now a frozen overlay);
# section 4 exports rlxc's.
"$rlxc" create -q -n full -t download -d debian -r bookworm -a amd64 >/dev/null
if command -v rsync >/dev/null; then
    lxc lxc-create -n full -t download -- -d debian -r bookworm -a amd64 --force-cache >/dev/null 2>&1
    echo "3. full copy of a stopped Debian container, $iterations copies each"
    time_pair copy "<= 0.7x" \
        'lxc lxc-copy -n full -N f%i' \
        '"$rlxc" copy -q -n full -N f%i'
else
    echo "3. full copy: NOT MEASURED (lxc-copy copies with rsync, which is not installed)"
fi

echo "4. rlxc-export + rlxc-import of it ($(du -sm "$work/rlxc-lib/full/rootfs" | cut -f1) MB tree)"
mb=$(du -sm --apparent-size "$work/rlxc-lib/full/rootfs" | cut -f1)
: > "$work/e.times"; : > "$work/i.times"
for i in $(seq "$iterations"); do
    sync; t=$(stamp); "$rlxc" export -q -n full "$work/full$i.tar.zst"; elapsed "$t" >> "$work/e.times"
    sync; t=$(stamp); "$rlxc" import -q -n imp$i "$work/full$i.tar.zst"; elapsed "$t" >> "$work/i.times"
    rm -f "$work/full$i.tar.zst"
done
e=$(median < "$work/e.times"); im=$(median < "$work/i.times")
printf '   export %.2f s (%.0f MB/s)   import %.2f s (%.0f MB/s)\n' "$e" "$(ratio "$mb" "$e")" "$im" "$(ratio "$mb" "$im")"

echo "5. systemd boot to running, the same image on overlay and on dir, $iterations boots each"
printf '[[network]]\ntype = "empty"\n' > "$work/none.toml"
"$rlxc" create -q -n bo -B overlay -t download -d debian -r bookworm -a amd64 -f "$work/none.toml" >/dev/null
"$rlxc" create -q -n bd -t download -d debian -r bookworm -a amd64 -f "$work/none.toml" >/dev/null
# One boot each first, untimed: a first boot does one-time work (machine-id, journal
# files) on either store, and on overlay copies up what it touches once.
boot bo >/dev/null; boot bd >/dev/null
: > "$work/o.times"; : > "$work/d.times"
for i in $(seq "$iterations"); do
    boot bo >> "$work/o.times"
    boot bd >> "$work/d.times"
done
o=$(median < "$work/o.times"); d=$(median < "$work/d.times")
printf '   dir %.2f s   overlay %.2f s   overlay/dir = %.2f   (target <= 1.0, noise aside)\n' "$d" "$o" "$(ratio "$o" "$d")"
