# Shared by the benchmark scripts (sourced): checks and builds, serving the fixture mirror,
# rlxc's config, LXC's cache, timing. Callers set $work and kill $server_pid on exit.
# Times are read from bash's $EPOCHREALTIME: no process is started to read the clock, so
# a measurement holds only the work of the tool measured.

export LC_NUMERIC=C # $EPOCHREALTIME with a '.' for bc
# An interrupted or killed benchmark runs its EXIT trap too (bash skips it on a signal
# it does not trap): no bridge, dnsmasq, container or raised sysctl is left behind.
trap 'exit 130' INT
trap 'exit 143' TERM
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fixtures=${fixtures:-${RLXC_FIXTURES:-/var/cache/rlxc-test-fixtures}}
# The release binary bench_prelude builds (where CARGO_TARGET_DIR puts it, if set).
rlxc=${rlxc:-${CARGO_TARGET_DIR:-$repo/target}/release/rlxc}

# Root and LXC present, fixture images built (build-mirror.sh arguments pass through),
# the release binary current.
bench_prelude() {
    [ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
    command -v lxc-create >/dev/null || { echo "LXC is not installed: apt-get install lxc" >&2; exit 1; }
    bash "$repo/tests/fixtures/build-mirror.sh" "$@" >/dev/null 2>&1
    (cd "$repo" && cargo build --release --quiet)
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { echo "$1 / $2" | bc -l; }
# An LXC tool on the benchmark's own lxcpath.
lxc() { local cmd=$1; shift; "$cmd" -P "$work/lxc-lib" "$@"; }
# The busybox release the fixture mirror publishes.
busybox_release() { awk -F';' '$1=="busybox" {print $2}' "$fixtures/mirror/meta/1.0/index-system"; }

# Serve the fixture mirror on a free loopback port: sets $port and $server_pid.
serve_mirror() {
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    python3 -m http.server "$port" --bind 127.0.0.1 -d "$fixtures/mirror" >/dev/null 2>&1 &
    server_pid=$!
    for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/meta/1.0/index-system" >/dev/null 2>&1 && break; sleep 0.1; done
}

# $work/rlxc.toml pointing every path into $work and at the mirror; extra TOML on stdin
# (e.g. a [network] table) is appended. Exports RLXC_CONFIG.
write_rlxc_config() {
    {
        printf 'lxcpath = "%s"\ncachepath = "%s"\nrunpath = "%s"\n' "$work/rlxc-lib" "$work/rlxc-cache" "$(bench_runpath)"
        printf '[download]\nserver = "http://127.0.0.1:%s"\n' "$port"
        cat
    } > "$work/rlxc.toml"
    export RLXC_CONFIG="$work/rlxc.toml"
}

# Root's ids for the run's unprivileged containers, from $work/subuid and $work/subgid
# (written here; the host's /etc/subuid is not touched): prints their `[idmap]` TOML,
# for `write_rlxc_config < <(run_subids)` (piped, its export would stay in a subshell).
run_subids() {
    echo "root:1000000:1000000000" > "$work/subuid"
    cp "$work/subuid" "$work/subgid"
    printf '[idmap]\nsubuid = "%s"\nsubgid = "%s"\n' "$work/subuid" "$work/subgid"
}

# LXC's download template only speaks https to a real server, so its cache
# ($work/lxc-cache) is filled the way it fills it itself: rootfs.tar.xz, meta, build_id.
fill_lxc_cache() { # dist release
    local index="$fixtures/mirror/meta/1.0/index-system" path build cache
    path=$(awk -F';' -v d="$1" -v r="$2" '$1==d && $2==r && $3=="amd64" && $4=="default" {print $6}' "$index")
    build=$(awk -F';' -v d="$1" -v r="$2" '$1==d && $2==r && $3=="amd64" && $4=="default" {print $5}' "$index")
    cache="$work/lxc-cache/download/$1/$2/amd64/default"
    mkdir -p "$cache" "$work/lxc-lib"
    cp "$fixtures/mirror$path/rootfs.tar.xz" "$cache/"
    tar -xJf "$fixtures/mirror$path/meta.tar.xz" -C "$cache"
    echo "$build" > "$cache/build_id"
}

# A work directory /var/tmp/rlxc-bench-NAME.XXXXXX, searchable: sets $work and $tag
# (this shell's pid, for unique names) and clears $server_pid.
bench_workspace() { # name
    work=$(mktemp -d "/var/tmp/rlxc-bench-$1.XXXXXX")
    chmod 755 "$work"
    server_pid=
    tag=$$
}

# A work directory /var/tmp/rlxc-bench-NAME.XXXXXX (searchable: the bridge's dnsmasq reads
# below it) and a test bridge named PREFIX+pid on 10.OCTET.x.0/24: sets $work, $tag,
# $bridge, $subnet and clears $server_pid.
bench_bridge_workspace() { # name prefix octet
    bench_workspace "$1"
    bridge="$2$((tag % 100000))"
    subnet="10.$3.$((tag % 200 + 20))"
}

# Both tools on one rlxc-managed test bridge $bridge ($subnet.1/24, DHCP from its
# dnsmasq): $work/rlxc.toml, $work/rlxc-net.toml (container defaults) and $work/lxc.conf.
bridge_configs() {
    write_rlxc_config <<TOML
[network]
bridge = "$bridge"
ipv4 = "$subnet.1/24"
upstream_dns = false
TOML
    printf '[[network]]\ntype = "veth"\nlink = "%s"\nhwaddr = "00:16:3e:xx:xx:xx"\nipv4 = "dhcp"\n' "$bridge" > "$work/rlxc-net.toml"
    lxc_bridge_conf > "$work/lxc.conf"
}

# An LXC container config with one veth on $bridge (no address: DHCP or added after).
lxc_bridge_conf() {
    cat <<CONF
lxc.net.0.type = veth
lxc.net.0.link = $bridge
lxc.net.0.flags = up
lxc.net.0.hwaddr = 00:16:3e:xx:xx:xx
lxc.apparmor.profile = unconfined
CONF
}

# The run's RUNPATH: under /run (tmpfs), as the installed /run/rlxc is, not on the
# work directory's disk, where every small state file would cost a real sync.
bench_runpath() { echo "/run/rlxc-bench-${work##*/}"; }

# On exit: kill the containers named (rlxc ones, then -- and LXC ones), stop the test
# bridge and the mirror server, remove $work and the RUNPATH.
bench_cleanup() {
    local n lxc_side=
    for n in "$@"; do
        if [ "$n" = -- ]; then lxc_side=1; continue; fi
        if [ -n "$lxc_side" ]; then
            lxc-stop -P "$work/lxc-lib" -k -n "$n" >/dev/null 2>&1 || true
        else
            "$rlxc" stop -q -k -n "$n" >/dev/null 2>&1 || true
        fi
    done
    "$rlxc" net stop -f -q >/dev/null 2>&1 || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work" "$(bench_runpath)"
}

stamp() { echo "$EPOCHREALTIME"; }
elapsed() { echo "$(stamp) - $1" | bc; }

# boot NAME: start it, print the seconds until `systemctl is-system-running` settles
# (polled every 20 ms, at most 30 s), kill it.
boot() {
    local t s
    t=$(stamp)
    "$rlxc" start -q -d -n "$1"
    for _ in $(seq 1500); do
        s=$("$rlxc" attach -n "$1" -- systemctl is-system-running 2>/dev/null || true)
        case "$s" in running|degraded) break ;; esac
        sleep 0.02
    done
    elapsed "$t"
    "$rlxc" stop -q -k -n "$1"
    [ "$s" = running ] || echo "   note: $1 settled as '$s'" >&2
}
