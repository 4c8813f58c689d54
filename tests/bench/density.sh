#!/usr/bin/env bash
# Benchmark: many networked containers on one host, rlxc vs LXC 5, in one run.
#
#   [UNPRIV=1] tests/bench/density.sh [N] [M] [LN] [LM]
#                            (as root; defaults 200 10, LXC min(N,100) min(M,10))
#
#  1. N busybox containers (-B overlay) on a managed test bridge of the bench's own (a
#     /20, ipv4 = "auto"), started by one `rlxc-start --all`: time to all running, to all
#     addressed (rlxc-ls -f), to every one answering a ping from the host and resolving by
#     name on the bridge's DNS; host memory per container and the monitors' own RSS (after
#     their idle trim); `rlxc-ls -f`; `rlxc-stop --all` (a clean halt); nothing left
#     (veths, cgroups, monitors, mounts).
#            (targets at N=1000: addressed within 60 s, ls -f < 0.5 s, monitors <= 1 MiB
#             each, stop within 30 s)
#  2. M Debian bookworm (systemd) containers started together, time until every one's
#     `systemctl is-system-running` settles (target: 100 within 90 s); stopped together.
#  3. LN busybox and LM Debian LXC containers (lxc-copy -s -B overlayfs of one each, DHCP
#     from the same dnsmasq: LXC's busybox image runs udhcpc over a static address)
#     started and stopped the same way, 16 at a time
#     (LXC has no bulk start but lxc-autostart); the ratios per container are printed.
# The kernel limits the counts need (rlxc-checkconfig --containers names them) are raised
# for the run and put back at exit; what was changed is printed. Traffic stays on the test
# bridge.
set -euo pipefail

n=${1:-200}
m=${2:-10}
ln=${3:-$((n < 100 ? n : 100))}
lm=${4:-$((m < 10 ? m : 10))}
jobs=16
. "$(dirname "$0")/lib.sh"
probe="python3 $repo/tests/bench/probe.py"
bench_prelude

bench_bridge_workspace density rlxd 236
# A /20 of its own: 10.236.B.0/20, B a multiple of 16.
base=$(( (tag % 15 + 1) * 16 ))
gw="10.236.$base.1"
bb="rd$tag" deb="rdd$tag" lbb="ld$tag" ldeb="ldd$tag"
rnames=() lnames=()
for i in $(seq "$n"); do rnames+=("$bb-$i"); done
for i in $(seq "$m"); do rnames+=("$deb-$i"); done
for i in $(seq "$ln"); do lnames+=("$lbb-$i"); done
for i in $(seq "$lm"); do lnames+=("$ldeb-$i"); done
sysctl_restore=()
cleanup() {
    set +e
    "$rlxc" stop -q -k --all >/dev/null 2>&1
    printf '%s\n' "${lnames[@]}" "lbase$tag" "ldbase$tag" |
        xargs -r -P "$jobs" -I{} lxc-stop -P "$work/lxc-lib" -k -n {} >/dev/null 2>&1
    for kv in "${sysctl_restore[@]}"; do sysctl -q -w "$kv" >/dev/null; done
    [ ${#sysctl_restore[@]} -gt 0 ] && echo "restored: ${sysctl_restore[*]}"
    bench_cleanup
}
trap cleanup EXIT

serve_mirror
write_rlxc_config <<TOML
[network]
bridge = "$bridge"
ipv4 = "$gw/20"
upstream_dns = false
$([ -n "${UNPRIV:-}" ] && run_subids)
TOML
printf '[[network]]\ntype = "veth"\nlink = "%s"\nhwaddr = "00:16:3e:xx:xx:xx"\nipv4 = "auto"\n' "$bridge" > "$work/rlxc-net.toml"
# UNPRIV=1: the busybox containers are unprivileged (each its own 65536 ids from the
# run's own subuid/subgid files), as rlxc's shipped defaults make every new container.
[ -n "${UNPRIV:-}" ] && printf '[idmap]\n' >> "$work/rlxc-net.toml"

# What N containers need of the kernel, from rlxc-checkconfig; the Debian ones are
# privileged, and each privileged systemd takes root's inotify instances.
raise() { # key value
    local old
    old=$(sysctl -n "$1")
    [ "$old" -ge "$2" ] 2>/dev/null && return 0
    sysctl_restore+=("$1=$old")
    sysctl -q -w "$1=$2" >/dev/null
    echo "   raised $1 from $old to $2"
}
echo "kernel limits for $((n + m + ln + lm)) containers:"
while read -r kv; do
    raise "${kv%%=*}" "${kv#*=}"
done < <("$rlxc" checkconfig --containers "$((n + m + ln + lm))" 2>/dev/null |
    grep -o 'sysctl -w [^,]*' | awk '{print $3}')
# Both sides' Debian containers are privileged here (-f replaces the defaults' [idmap]):
# each systemd takes root's inotify instances, which checkconfig counts only when told.
raise fs.inotify.max_user_instances $((128 + 16 * (m + lm)))
raise fs.inotify.max_user_watches $((65536 + 8192 * (m + lm)))

bb_rel=$(busybox_release)
t0=$(stamp); "$rlxc" net start -q
printf 'bridge %s (%s/20), dnsmasq: %.2f s\n' "$bridge" "$gw" "$(elapsed "$t0")"

# Leftovers of this installation on the host: interfaces on the bridge, monitors,
# cgroups and mounts of the containers named PREFIX-*.
leftovers() { # prefix monitor-pattern
    local veths mons cgs mnts
    # A monitor answers its stopper before it exits, then removes its veth (a thousand
    # at once queue on the kernel's RTNL lock): a moment to go, timed.
    local t0
    t0=$(stamp)
    for _ in $(seq 300); do
        ps -eo args= | grep -q -- "$2" || break
        sleep 0.1
    done
    printf '   monitors gone %.1f s after the stop returned\n' "$(elapsed "$t0")"
    veths=$(ls "/sys/class/net/$bridge/brif" 2>/dev/null | wc -l)
    mons=$(ps -eo args= | grep -c -- "$2" || true)
    cgs=$(find /sys/fs/cgroup -maxdepth 5 -type d -name "$1-*" 2>/dev/null | wc -l)
    mnts=$(grep -c -e "$work/.*/$1-" -e "$(bench_runpath)/.*$1-" /proc/self/mountinfo || true)
    echo "   left: $veths veths on $bridge, $mons monitors, $cgs cgroups, $mnts mounts"
    [ "$veths$mons$cgs$mnts" = 0000 ] || echo "   FAIL: something was left" >&2
}
mem_avail() { awk '/^MemAvailable:/ {print $2}' /proc/meminfo; }
# RSS (KiB) of the monitors whose command line matches: total and the largest.
monitor_rss() { ps -eo rss=,args= | grep -- "$1" | grep -v grep | awk '{s+=$1; if ($1>x) x=$1; c++} END {printf "%d %d %d", c, s, x}'; }

# Packets the kernel dropped on the way in (backlog full, summed over CPUs) and times the
# IPv4 neighbour table was full: what a start phase cost the network stack, printed so a
# slow "addressed" can be told from lost DHCP packets.
softnet_drops() { local s=0 _a d _r; while read -r _a d _r; do s=$((s + 16#$d)); done < /proc/net/softnet_stat; echo "$s"; }
arp_fulls() { ip -s ntable show name arp_cache | awk '/table_fulls/ {print $2; exit}'; }
# UDP datagrams the host dropped for a full socket buffer (dnsmasq's DHCP socket, when it
# falls behind), and dnsmasq's CPU time in clock ticks.
udp_rcvbuf_errors() { awk '$1 == "Udp:" && $2 ~ /^[0-9]/ {print $6}' /proc/net/snmp; }
dnsmasq_ticks() {
    local pid st
    pid=$(cat "$(bench_runpath)/net/$bridge.dnsmasq.pid" 2>/dev/null) || { echo 0; return; }
    read -r -a st < "/proc/$pid/stat" || { echo 0; return; }
    echo $((st[13] + st[14]))
}

# Poll `rlxc-ls -f` until every container of the prefix shows an IPv4 address.
until_addressed() { # prefix count
    for _ in $(seq 600); do
        [ "$("$rlxc" ls -f -F name,ipv4 "^$1-" | awk 'NR>1 && $2 ~ /^[0-9]+\./' | wc -l)" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
# NAME ADDRESS of the running containers of the prefix.
addresses() { "$rlxc" ls -f -F name,ipv4 "^$1-" | awk 'NR>1 {sub(/,.*/, "", $2); print $1, $2}'; }
# Until each container's systemd settles (running or degraded): seconds printed.
until_booted() { # t0 attach-command-prefix names…
    local t0=$1 cmd=$2 s pending
    shift 2
    pending=("$@")
    for _ in $(seq 900); do
        local still=()
        for c in "${pending[@]}"; do
            s=$($cmd "$c" -- systemctl is-system-running 2>/dev/null || true)
            case "$s" in running|degraded) ;; *) still+=("$c") ;; esac
        done
        pending=("${still[@]}")
        [ ${#pending[@]} = 0 ] && { elapsed "$t0"; return 0; }
        sleep 0.1
    done
    echo "not booted after 90 s: ${pending[*]}" >&2
    elapsed "$t0"
}

# rlxc-stop --all (a clean halt, killed after TIMEOUT), timed; then what is left of the
# containers of PREFIX. The seconds on stdout, the rest on stderr.
stop_all() { # timeout prefix
    local t0 s
    t0=$(stamp)
    "$rlxc" stop -q -t "$1" -j "$jobs" --all
    s=$(elapsed "$t0")
    printf '   rlxc-stop --all %.2f s\n' "$s" >&2
    leftovers "$2" "monitor\] $2-[0-9]* " >&2
    echo "$s"
}

echo "1. rlxc: $n busybox containers, ipv4 = auto"
t0=$(stamp)
printf '%s\n' "${rnames[@]:0:$n}" | xargs -P 2 -I{} "$rlxc" create -q -n {} -B overlay \
    -t download -d busybox -r "$bb_rel" -a amd64 -f "$work/rlxc-net.toml"
printf '   created in %.1f s\n' "$(elapsed "$t0")"
mem0=$(mem_avail)
drops0=$(softnet_drops) fulls0=$(arp_fulls) udp0=$(udp_rcvbuf_errors) dq0=$(dnsmasq_ticks)
t0=$(stamp)
"$rlxc" start -q -d -j "$jobs" "${rnames[@]:0:$n}" ||
    echo "   some starts failed (named above): the run goes on with the others" >&2
r_running=$(elapsed "$t0")
until_addressed "$bb" "$n" || echo "   not all addressed after 60 s" >&2
r_addr=$(elapsed "$t0")
addresses "$bb" > "$work/r-addr"
r_ping_n=$($probe ping < "$work/r-addr") || true
r_ping=$(elapsed "$t0")
r_dns_n=$($probe dns "$gw" lxc < "$work/r-addr") || true
printf '   all running %.2f s, all addressed %.2f s, pings answered %s at %.2f s, names resolved %s\n' \
    "$r_running" "$r_addr" "$r_ping_n" "$r_ping" "$r_dns_n"
printf '   packets dropped by the kernel (backlog full) %d, neighbour table full %d times\n' \
    "$(($(softnet_drops) - drops0))" "$(($(arp_fulls) - fulls0))"
printf '   dnsmasq: %.1f s of CPU, %d datagrams dropped at full UDP sockets\n' \
    "$(echo "($(dnsmasq_ticks) - $dq0) / $(getconf CLK_TCK)" | bc -l)" "$(($(udp_rcvbuf_errors) - udp0))"
sleep 3 # the monitors' idle trim (2 s after their last work)
mem1=$(mem_avail)
read -r mc ms mx <<< "$(monitor_rss "monitor\] $bb-[0-9]* $work/rlxc-lib")"
r_mon=$((ms / (mc > 0 ? mc : 1)))
printf '   host memory %d KiB per container; %d monitors, %d KiB resident each (largest %d KiB)\n' \
    "$(( (mem0 - mem1) / n ))" "$mc" "$r_mon" "$mx"
: > "$work/ls"
for _ in 1 2 3; do t0=$(stamp); "$rlxc" ls -f > /dev/null; elapsed "$t0" >> "$work/ls"; done
r_ls=$(median < "$work/ls")
printf '   rlxc-ls -f %.3f s\n' "$r_ls"
r_stop=$(stop_all 10 "$bb")

if [ "$m" -gt 0 ]; then
    echo "2. rlxc: $m Debian bookworm containers (systemd)"
    printf '%s\n' "${rnames[@]:$n}" | xargs -P 2 -I{} "$rlxc" create -q -n {} -B overlay \
        -t download -d debian -r bookworm -a amd64 -f "$work/rlxc-net.toml"
    t0=$(stamp)
    "$rlxc" start -q -d -j "$jobs" "${rnames[@]:$n}" ||
        echo "   some starts failed (named above): the run goes on with the others" >&2
    r_deb=$(until_booted "$t0" "$rlxc attach -n" "${rnames[@]:$n}")
    printf '   all running (systemd settled) %.2f s\n' "$r_deb"
    stop_all 30 "$deb" > /dev/null
fi

echo "3. LXC 5: $ln busybox, $lm Debian (lxc-copy -s -B overlayfs, DHCP, $jobs at a time)"
lxc_bridge_conf > "$work/lxc-bb.conf"
lxc_clone() { # base name
    lxc lxc-copy -n "$1" -N "$2" -s -B overlayfs >/dev/null
}
if [ "$ln" -gt 0 ]; then
    fill_lxc_cache busybox "$bb_rel"
    LXC_CACHE_PATH="$work/lxc-cache" lxc-create -P "$work/lxc-lib" -n "lbase$tag" -f "$work/lxc-bb.conf" \
        -t download -- -d busybox -r "$bb_rel" -a amd64 --force-cache >/dev/null
    # LXC's busybox image runs udhcpc, which replaces a static lxc.net.0.ipv4.address: its
    # containers take DHCP leases from the same dnsmasq, and are pinged at the addresses
    # lxc-ls reports.
    for i in $(seq "$ln"); do lxc_clone "lbase$tag" "$lbb-$i"; done
    mem0=$(mem_avail)
    t0=$(stamp)
    printf '%s\n' "${lnames[@]:0:$ln}" | xargs -P "$jobs" -I{} lxc-start -P "$work/lxc-lib" -n {} -d
    printf '%s\n' "${lnames[@]:0:$ln}" | xargs -P "$jobs" -I{} lxc-wait -P "$work/lxc-lib" -n {} -s RUNNING -t 30
    l_running=$(elapsed "$t0")
    lxc_addresses() { lxc lxc-ls -f -F NAME,IPV4 | awk -v p="^$lbb-" 'NR>1 && $1 ~ p && $2 ~ /^[0-9]+\./ {sub(/,.*/, "", $2); print $1, $2}'; }
    for _ in $(seq 600); do
        [ "$(lxc_addresses | wc -l)" -ge "$ln" ] && break
        sleep 0.1
    done
    l_addr=$(elapsed "$t0")
    lxc_addresses > "$work/l-addr"
    l_ping_n=$($probe ping < "$work/l-addr") || true
    l_ping=$(elapsed "$t0")
    printf '   all running %.2f s, all addressed (DHCP) %.2f s, pings answered %s at %.2f s\n' \
        "$l_running" "$l_addr" "$l_ping_n" "$l_ping"
    case $l_ping_n in "$ln/$ln") ;; *)
        echo "   $lbb-1 inside: $(lxc lxc-attach -n "$lbb-1" -- ip -4 -o addr 2>&1 | tr '\n' ';')" >&2
        grep -E 'hwaddr|ipv4' "$work/lxc-lib/$lbb-1/config" "$work/lxc-lib/$lbb-2/config" >&2 ;;
    esac
    sleep 3
    mem1=$(mem_avail)
    read -r lmc lms lmx <<< "$(monitor_rss "lxc monitor\] $work/lxc-lib $lbb-")"
    l_mon=$((lms / (lmc > 0 ? lmc : 1)))
    printf '   host memory %d KiB per container; %d monitors, %d KiB resident each\n' \
        "$(( (mem0 - mem1) / (ln > 0 ? ln : 1) ))" "$lmc" "$l_mon"
    : > "$work/lls"
    for _ in 1 2 3; do t0=$(stamp); lxc lxc-ls -f > /dev/null; elapsed "$t0" >> "$work/lls"; done
    l_ls=$(median < "$work/lls")
    printf '   lxc-ls -f %.3f s\n' "$l_ls"
    t0=$(stamp)
    printf '%s\n' "${lnames[@]:0:$ln}" | xargs -P "$jobs" -I{} lxc-stop -P "$work/lxc-lib" -t 10 -n {}
    l_stop=$(elapsed "$t0")
    printf '   lxc-stop, %d at a time, %.2f s\n' "$jobs" "$l_stop"
fi

if [ "$lm" -gt 0 ]; then
    fill_lxc_cache debian bookworm
    LXC_CACHE_PATH="$work/lxc-cache" lxc-create -P "$work/lxc-lib" -n "ldbase$tag" -f "$work/lxc-bb.conf" \
        -t download -- -d debian -r bookworm -a amd64 --force-cache >/dev/null
    for i in $(seq "$lm"); do lxc_clone "ldbase$tag" "$ldeb-$i"; done
    t0=$(stamp)
    printf '%s\n' "${lnames[@]:$ln}" | xargs -P "$jobs" -I{} lxc-start -P "$work/lxc-lib" -n {} -d
    l_deb=$(until_booted "$t0" "lxc-attach -P $work/lxc-lib -n" "${lnames[@]:$ln}")
    printf '   %d Debian all running (systemd settled) %.2f s\n' "$lm" "$l_deb"
    t0=$(stamp)
    printf '%s\n' "${lnames[@]:$ln}" | xargs -P "$jobs" -I{} lxc-stop -P "$work/lxc-lib" -t 30 -n {}
    printf '   lxc-stop, %d at a time, %.2f s\n' "$jobs" "$(elapsed "$t0")"
fi

echo "Per container (rlxc $n/$m against LXC $ln/$lm):"
# A count of 0 on either side (no LXC run asked): rlxc's figures alone, no ratio.
per() { if [ "$2" -gt 0 ]; then echo "$1 / $2" | bc -l; else echo 0; fi; }
# One row: label, rlxc's total seconds, LXC's total seconds.
row() {
    if [ "$ln" -gt 0 ]; then
        printf '   %-21s rlxc %6.1f ms  LXC %6.1f ms  rlxc/LXC = %.2f\n' "$1" \
            "$(per "$2 * 1000" "$n")" "$(per "$3 * 1000" "$ln")" "$(ratio "$(per "$2" "$n")" "$(per "$3" "$ln")")"
    else
        printf '   %-21s rlxc %6.1f ms  (no LXC run)\n' "$1" "$(per "$2 * 1000" "$n")"
    fi
}
row "busybox to running:" "$r_running" "${l_running:-0}"
row "busybox addressed:" "$r_addr" "${l_addr:-0}"
row "busybox answering:" "$r_ping" "${l_ping:-0}"
row "busybox stop:" "$r_stop" "${l_stop:-0}"
if [ "$ln" -gt 0 ]; then
    printf '   monitor RSS:          rlxc %6d KiB LXC %6d KiB rlxc/LXC = %.2f\n' "$r_mon" "$l_mon" \
        "$(ratio "$r_mon" "$((l_mon > 0 ? l_mon : 1))")"
else
    printf '   monitor RSS:          rlxc %6d KiB\n' "$r_mon"
fi
if [ "$m" -gt 0 ] && [ "$lm" -gt 0 ]; then
    printf '   Debian to running:    rlxc %6.1f ms  LXC %6.1f ms  rlxc/LXC = %.2f\n' \
        "$(per "$r_deb * 1000" "$m")" "$(per "$l_deb * 1000" "$lm")" \
        "$(ratio "$(per "$r_deb" "$m")" "$(per "$l_deb" "$lm")")"
fi
