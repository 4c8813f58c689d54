#!/usr/bin/env bash
# Benchmark: operating running containers, rlxc vs LXC 5 on the same fixture images, in
# one run.
#
#   tests/bench/ops.sh [N] [CYCLES]        (as root; default 20 containers, 10 cycles)
#
#  1. top: the first table of N running busybox containers (a veth each on a test
#     bridge): `rlxc-top --batch --iterations 1` against `lxc-top --batch` until its
#     first round is out               (target: rlxc-top under 100 ms for 100 containers)
#     lxc-top insists on a terminal on stdin, so both run under script(1) on a pty for
#     the comparison; rlxc-top is also timed on its own.
#  2. freeze and thaw of a running Debian bookworm (systemd): rlxc-freeze/rlxc-unfreeze
#     against lxc-freeze/lxc-unfreeze, interleaved          (target: each under 50 ms)
# Both tools get the same images (LXC's cache is filled from the fixture mirror) and one
# veth each on the same rlxc-managed test bridge. Medians and ratios are printed.
set -euo pipefail

n=${1:-20}
cycles=${2:-10}
. "$(dirname "$0")/lib.sh"
bench_prelude

bench_bridge_workspace ops rlxo 234
deb_r="rdeb$tag" deb_l="ldeb$tag"
rnames=() lnames=()
for i in $(seq "$n"); do rnames+=("rbb$tag-$i"); lnames+=("lbb$tag-$i"); done
trap 'bench_cleanup "${rnames[@]}" "$deb_r" -- "${lnames[@]}" "$deb_l"' EXIT

serve_mirror && bridge_configs && "$rlxc" net start -q
bb_rel=$(busybox_release)
ms() { echo "($1) * 1000" | bc -l; }
mkdir -p "$work/bin"
for c in top freeze unfreeze; do ln -sf "$rlxc" "$work/bin/rlxc-$c"; done

echo "setting up $n busybox containers for each tool"
fill_lxc_cache busybox "$bb_rel"
fill_lxc_cache debian bookworm
for i in $(seq "$n"); do
    "$rlxc" create -q -n "rbb$tag-$i" -t download -d busybox -r "$bb_rel" -a amd64 -f "$work/rlxc-net.toml" >/dev/null
    LXC_CACHE_PATH="$work/lxc-cache" lxc-create -P "$work/lxc-lib" -n "lbb$tag-$i" -f "$work/lxc.conf" \
        -t download -- -d busybox -r "$bb_rel" -a amd64 --force-cache >/dev/null
    "$rlxc" start -q -d -n "rbb$tag-$i"
    lxc lxc-start -n "lbb$tag-$i" -d
done
for i in $(seq "$n"); do lxc lxc-wait -n "lbb$tag-$i" -s RUNNING -t 10; done

# Under script(1), with a screen tall enough for every container: the time until the
# command has printed a line for each of them (then it is ended: lxc-top goes on).
on_pty_until_rows() { # prefix-of-rows command…
    local prefix=$1 line count=0 t0 t1 fd pid
    shift
    t0=$EPOCHREALTIME
    # script(1) says "Session terminated" when it is ended: not for the report.
    exec {fd}< <(exec script -qfec "stty rows 1000 cols 400; exec $*" /dev/null 2>/dev/null)
    pid=$!
    while IFS= read -r line <&"$fd"; do
        case $line in *"$prefix"*) count=$((count + 1)) ;; esac
        [ "$count" -ge "$n" ] && break
    done
    t1=$EPOCHREALTIME
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    exec {fd}<&-
    echo "$t1 - $t0" | bc
}

echo "1. top: the first table of $n running containers, $cycles runs each"
: > "$work/rt"; : > "$work/lt"; : > "$work/rt_own"; : > "$work/pty"
for _ in $(seq "$cycles"); do
    # What the pty and its shell take by themselves, to take off both tools' times.
    on_pty_until_rows " base-" "seq -f ' base-%g' $n" >> "$work/pty"
    on_pty_until_rows ",lbb$tag-" lxc-top -P "$work/lxc-lib" --batch >> "$work/lt"
    on_pty_until_rows " rbb$tag-" "$work/bin/rlxc-top" --batch --iterations 1 >> "$work/rt"
    t0=$EPOCHREALTIME; "$work/bin/rlxc-top" --batch --iterations 1 > "$work/top.out"; t1=$EPOCHREALTIME
    echo "$t1 - $t0" | bc >> "$work/rt_own"
done
rows=$(grep -c " rbb$tag-" "$work/top.out" || true)
[ "$rows" = "$n" ] || { echo "rlxc-top listed $rows of $n containers:" >&2; cat "$work/top.out" >&2; exit 1; }
lt=$(median < "$work/lt"); rt=$(median < "$work/rt"); rt_own=$(median < "$work/rt_own"); pty=$(median < "$work/pty")
printf '   on a pty:  lxc-top %.1f ms   rlxc-top %.1f ms   rlxc/LXC = %.3f\n' "$(ms "$lt")" "$(ms "$rt")" "$(ratio "$rt" "$lt")"
printf '   less the pty'"'"'s own %.1f ms:  lxc-top %.1f ms   rlxc-top %.1f ms   rlxc/LXC = %.3f\n' \
    "$(ms "$pty")" "$(ms "$lt - $pty")" "$(ms "$rt - $pty")" "$(ratio "($rt - $pty)" "($lt - $pty)")"
printf '   rlxc-top --batch --iterations 1 on its own: %.1f ms for %d containers\n' "$(ms "$rt_own")" "$n"

for i in $(seq "$n"); do
    "$rlxc" stop -q -k -n "rbb$tag-$i"
    lxc lxc-stop -n "lbb$tag-$i" -k
done

echo "2. Debian bookworm: freeze and thaw, $cycles cycles each"
"$rlxc" create -q -n "$deb_r" -t download -d debian -r bookworm -a amd64 -f "$work/rlxc-net.toml" >/dev/null
LXC_CACHE_PATH="$work/lxc-cache" lxc-create -P "$work/lxc-lib" -n "$deb_l" -f "$work/lxc.conf" \
    -t download -- -d debian -r bookworm -a amd64 --force-cache >/dev/null
until_running() { # command prefix…
    local s
    for _ in $(seq 1200); do
        s=$("$@" systemctl is-system-running 2>/dev/null || true)
        case $s in running | degraded) return 0 ;; esac
        sleep 0.05
    done
    return 1
}
"$rlxc" start -q -d -n "$deb_r"
lxc lxc-start -n "$deb_l" -d
until_running "$rlxc" attach -n "$deb_r" --
until_running lxc-attach -P "$work/lxc-lib" -n "$deb_l" --
: > "$work/rf"; : > "$work/ru"; : > "$work/lf"; : > "$work/lu"
for _ in $(seq "$cycles"); do
    t0=$EPOCHREALTIME; lxc lxc-freeze -n "$deb_l"; t1=$EPOCHREALTIME; lxc lxc-unfreeze -n "$deb_l"; t2=$EPOCHREALTIME
    echo "$t1 - $t0" | bc >> "$work/lf"; echo "$t2 - $t1" | bc >> "$work/lu"
    t0=$EPOCHREALTIME; "$work/bin/rlxc-freeze" -q -n "$deb_r"; t1=$EPOCHREALTIME; "$work/bin/rlxc-unfreeze" -q -n "$deb_r"; t2=$EPOCHREALTIME
    echo "$t1 - $t0" | bc >> "$work/rf"; echo "$t2 - $t1" | bc >> "$work/ru"
    sleep 0.2
done
lf=$(median < "$work/lf"); lu=$(median < "$work/lu"); rf=$(median < "$work/rf"); ru=$(median < "$work/ru")
printf '   freeze:  LXC %.1f ms   rlxc %.1f ms   rlxc/LXC = %.3f (target: rlxc < 50 ms)\n' "$(ms "$lf")" "$(ms "$rf")" "$(ratio "$rf" "$lf")"
printf '   thaw:    LXC %.1f ms   rlxc %.1f ms   rlxc/LXC = %.3f (target: rlxc < 50 ms)\n' "$(ms "$lu")" "$(ms "$ru")" "$(ratio "$ru" "$lu")"
