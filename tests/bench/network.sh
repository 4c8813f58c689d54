#!/usr/bin/env bash
# Benchmark: networking, rlxc vs LXC 5 on the same bridge and image, in one run.
#
#   tests/bench/network.sh [RUNS]        (as root; default 5 runs each)
#
#  1. rlxc-net start: create the managed bridge with DHCP, DNS and NAT (rlxc only)
#  2. Debian bookworm: from `start -d` until `info` shows an IPv4 address
#                                           (target: rlxc no slower than LXC)
# Both containers hang off the same rlxc-managed test bridge (its own name and subnet,
# never virbr0) and get their leases from the same dnsmasq; the image brings eth0 up
# with systemd-networkd DHCP. Runs are interleaved; medians and the ratio are printed.
# Traffic stays on the test bridge.
set -euo pipefail

runs=${1:-5}
. "$(dirname "$0")/lib.sh"
bench_prelude

bench_bridge_workspace net rlxb 231
deb_r="rnet$tag" deb_l="lnet$tag"
trap 'bench_cleanup "$deb_r" -- "$deb_l"' EXIT

serve_mirror

bridge_configs

lxc() { local cmd=$1; shift; "$cmd" -P "$work/lxc-lib" "$@"; }

echo "1. rlxc-net start: bridge $bridge ($subnet.1/24), dnsmasq, forwarding, NAT"
t0=$EPOCHREALTIME; "$rlxc" net start -q; t1=$EPOCHREALTIME
printf '   rlxc %.3f s (LXC has no equivalent: lxc-net is a shell script run once by systemd)\n' "$(echo "$t1 - $t0" | bc)"

"$rlxc" create -q -n "$deb_r" -t download -d debian -r bookworm -a amd64 -f "$work/rlxc-net.toml" >/dev/null
fill_lxc_cache debian bookworm
LXC_CACHE_PATH="$work/lxc-cache" lxc-create -P "$work/lxc-lib" -n "$deb_l" -f "$work/lxc.conf" \
    -t download -- -d debian -r bookworm -a amd64 --force-cache >/dev/null

# Poll every 20 ms until the tool's own info command shows an IPv4 address.
until_ipv4() { # command…
    for _ in $(seq 3000); do
        "$@" 2>/dev/null | grep -Eq '^IP:[[:space:]]+[0-9]+\.' && return 0
        sleep 0.02
    done
    echo "no address after 60 s: $*" >&2
    return 1
}

echo "2. Debian bookworm: start -d until info shows an IPv4 address, $runs runs each"
: > "$work/r"; : > "$work/l"
for _ in $(seq "$runs"); do
    t0=$EPOCHREALTIME; lxc lxc-start -n "$deb_l" -d; until_ipv4 lxc-info -P "$work/lxc-lib" -n "$deb_l" -i; t1=$EPOCHREALTIME
    echo "$t1 - $t0" | bc >> "$work/l"; lxc lxc-stop -n "$deb_l" -k
    t0=$EPOCHREALTIME; "$rlxc" start -q -d -n "$deb_r"; until_ipv4 "$rlxc" info -n "$deb_r"; t1=$EPOCHREALTIME
    echo "$t1 - $t0" | bc >> "$work/r"; "$rlxc" stop -q -k -n "$deb_r"
done
l=$(median < "$work/l"); r=$(median < "$work/r")
printf '   LXC %.3f s   rlxc %.3f s   rlxc/LXC = %.2f (target <= 1)\n' "$l" "$r" "$(echo "$r / $l" | bc -l)"
echo "   (all runs, seconds: LXC $(tr '\n' ' ' < "$work/l")| rlxc $(tr '\n' ' ' < "$work/r"))"
