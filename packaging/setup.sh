#!/usr/bin/env bash
# One-command setup on a fresh Debian/Ubuntu machine (as root):
#   packaging/setup.sh            system packages, release build, install under /usr/local
#   packaging/setup.sh --deps     only the system packages (what CI and the tests need)
#   packaging/setup.sh --no-deps  only the build and install (an offline machine that has them)
# PREFIX (default /usr/local) and DESTDIR are honoured for the install step.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}

# Build: C toolchain bits for the -sys crates. Run time: dnsmasq (the managed bridge's
# DHCP and DNS) and nftables (its NAT). Tests: fixture building (debootstrap,
# busybox-static, xz), attribute checks (acl, attr, libcap2-bin), terminals (tmux),
# network checks (iproute2, iptables), a TLS mirror (openssl, python3), a pure cgroup v2
# host in a VM (qemu-system-x86, linux-image-amd64; apparmor for the parser the VM's
# AppArmor checks use), lxcfs (the container views' test starts one on a mountpoint of
# its own), a real OCI registry (docker-registry, images pushed to it with skopeo), LXC
# itself for the side-by-side benchmarks, and lintian and man-db for the package's checks
# (tests/package.rs). TLS is rustls: no OpenSSL headers are needed to build.
packages=(
    build-essential pkg-config liblzma-dev ca-certificates
    dnsmasq-base nftables
    debootstrap busybox-static xz-utils tar acl attr libcap2-bin tmux curl bc iproute2 iptables procps
    openssl python3 qemu-system-x86 linux-image-amd64 apparmor
    lxc lxc-templates btrfs-progs lxcfs
    lintian man-db docker-registry skopeo
)
# Only the side-by-side benchmarks need these (lxc-copy copies with rsync; LXC's lxc-oci
# template unpacks with umoci): a machine that cannot fetch them still runs every test.
bench_packages=(rsync umoci jq)

missing_of() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

# apt-get with retries: a CI machine's resolver can fail for a minute at a time, and one
# failed fetch must not fail the whole run.
apt_retry() {
    local try
    for try in 1 2 3 4 5; do
        DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=3 "$@" && return 0
        [ "$try" = 5 ] && break
        echo "apt-get $1 failed (try $try of 5); retrying in $((try * 10)) s" >&2
        sleep $((try * 10))
    done
    return 1
}

install_deps() {
    local missing=() bench=()
    mapfile -t missing < <(missing_of "${packages[@]}")
    mapfile -t bench < <(missing_of "${bench_packages[@]}")
    if [ ${#missing[@]} -gt 0 ] || [ ${#bench[@]} -gt 0 ]; then
        apt_retry update -qq || true
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}"
        apt_retry install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if [ ${#bench[@]} -gt 0 ]; then
        echo "installing (for the benchmarks): ${bench[*]}"
        apt_retry install -y -qq --no-install-recommends "${bench[@]}" >/dev/null \
            || echo "warning: could not install ${bench[*]}; the benchmarks that compare with lxc-copy need it" >&2
    fi
    command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }
}

install_rlxc() {
    (cd "$repo" && cargo build --release --locked)
    local bin="$DESTDIR$PREFIX/bin" share="$DESTDIR$PREFIX/share/rlxc" etc="$DESTDIR/etc/rlxc"
    install -d "$bin" "$share/templates" "$etc"
    install -m 0755 "$repo/target/release/rlxc" "$bin/rlxc"
    for cmd in $("$repo/target/release/rlxc" --help | awk '/^Commands:/{f=1;next} /^$/{f=0} f && $1!="help"{print $1}'); do
        ln -sf rlxc "$bin/rlxc-$cmd"
    done
    cp -r "$repo/templates/." "$share/templates/"
    # Never overwrite a sysadmin's configuration.
    for f in rlxc.toml default.toml; do
        [ -e "$etc/$f" ] || install -m 0644 "$repo/config/$f" "$etc/$f"
    done
    # New containers are unprivileged (default.toml's [idmap]): root needs host ids.
    [ -n "$DESTDIR" ] || sh "$repo/packaging/subid-root.sh"
    echo "installed rlxc to $bin (with the rlxc-* names), templates to $share/templates, config to $etc"
}

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ "${1:-}" = "--no-deps" ] || install_deps
[ "${1:-}" = "--deps" ] || install_rlxc
