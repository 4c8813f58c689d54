#!/usr/bin/env bash
# A pure cgroup v2 host for rlxc: boots Debian 12 (the fixture debootstrap tree, the
# distribution kernel, systemd as PID 1, so cgroup2 alone on /sys/fs/cgroup with every
# controller) in QEMU and runs tests/vm/guest.sh there. KVM is used when the machine
# offers it, else TCG (slow: minutes). Prints the guest's "RLXC-V2 …" lines; exits 0 only
# if it printed DONE and no FAIL.
#
#   tests/vm/host.sh [RLXC_BINARY]      (as root; needs qemu-system-x86 and linux-image-amd64)
#
# With RLXC_VM_DEB=PATH.deb the guest runs tests/vm/guest-deb.sh instead: it installs that
# package, reboots (the VM may reboot; its poweroff ends QEMU) and checks the autostart
# containers created here (see below) came back in order, then the package's units.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
rlxc=${1:-$repo/target/release/rlxc}
fixtures=${RLXC_FIXTURES:-/var/cache/rlxc-test-fixtures}
die() { echo "vm: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$rlxc" ] || die "no rlxc binary at $rlxc (cargo build --release)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing: apt-get install qemu-system-x86"
kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)
[ -n "$kernel" ] || die "no kernel in /boot: apt-get install linux-image-amd64"
initrd=/boot/initrd.img-${kernel#/boot/vmlinuz-}
[ -f "$initrd" ] || die "no $initrd: update-initramfs -c -k ${kernel#/boot/vmlinuz-}"
base=$fixtures/debootstrap-bookworm-amd64.tar
[ -f "$base" ] || die "no $base: run tests/fixtures/build-mirror.sh"

work=$(mktemp -d /var/tmp/rlxc-vm.XXXXXX)
server_pid=
qemu_pid=
cleanup() {
    [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
. "$repo/tests/bench/lib.sh"

# The VM's root: the debootstrap tree, rlxc, and a oneshot unit that runs the guest test.
root=$work/root
mkdir -p "$root"
tar -xf "$base" -C "$root"
install -D -m 0644 "$repo/tests/vm/lib.sh" "$root/usr/local/lib/rlxc-vm-lib.sh"
deb=${RLXC_VM_DEB:-}
if [ -n "$deb" ]; then
    # The package brings /usr/bin/rlxc; the containers below are made with this build.
    install -m 0644 "$deb" "$root/root/rlxc.deb"
    install -m 0755 "$repo/tests/vm/guest-deb.sh" "$root/usr/local/bin/rlxc-v2-test"
else
    install -m 0755 "$rlxc" "$root/usr/local/bin/rlxc"
    install -m 0755 "$repo/tests/vm/guest.sh" "$root/usr/local/bin/rlxc-v2-test"
fi
# The distribution kernel runs AppArmor: the guest loads rlxc's profile with the host's
# parser (it needs only libc, and host and guest are both Debian 12).
parser=$(command -v apparmor_parser || echo /sbin/apparmor_parser)
[ -x "$parser" ] || die "apparmor_parser is missing: apt-get install apparmor"
install -m 0755 "$parser" "$root/usr/sbin/apparmor_parser"
echo rlxc-v2 > "$root/etc/hostname"
cat > "$root/etc/systemd/system/rlxc-v2-test.service" <<'UNIT'
[Unit]
Description=rlxc on a pure cgroup v2 host
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/bin/rlxc-v2-test
ExecStopPost=/bin/sh -c '[ -e /run/rlxc-vm-rebooting ] || systemctl poweroff --no-block'
UNIT
ln -s ../rlxc-v2-test.service "$root/etc/systemd/system/multi-user.target.wants/rlxc-v2-test.service"
# No udev in the tree: nothing may wait for a serial device unit.
ln -s /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"

# The containers, created on this host from the fixture mirror straight into the VM's
# /var/lib/rlxc (the default lxcpath there).
serve_mirror
write_rlxc_config <<TOML
TOML
sed -i "s|^lxcpath = .*|lxcpath = \"$root/var/lib/rlxc\"|" "$work/rlxc.toml"
bb_rel=$(awk -F';' '$1=="busybox" {print $2}' "$fixtures/mirror/meta/1.0/index-system")
if [ -n "$deb" ]; then
    # Two autostart containers: "first" (order 1, 2 s delay) before "second" (order 2).
    for c in first:1:2 second:2:0; do
        IFS=: read -r name order delay <<< "$c"
        printf '[[network]]\ntype = "empty"\n[autostart]\nenabled = true\norder = %s\ndelay = %s\n' \
            "$order" "$delay" > "$work/$name.toml"
        "$rlxc" create -q -n "$name" -t download -d busybox -r "$bb_rel" -f "$work/$name.toml" >/dev/null
    done
else
    printf '[[network]]\ntype = "empty"\n[limits]\nmemory = "256M"\ncpus = 0.5\npids = 500\n' > "$work/deb.toml"
    printf '[[network]]\ntype = "empty"\n[limits]\nmemory = "128M"\nmemory_swap = "32M"\ncpu_weight = 50\ncpuset = "0"\nio_weight = 200\n' > "$work/bb.toml"
    "$rlxc" create -q -n deb -t download -d debian -r bookworm -f "$work/deb.toml" >/dev/null
    "$rlxc" create -q -n bb -t download -d busybox -r "$bb_rel" -f "$work/bb.toml" >/dev/null
    # A second installation (the VM's /var/lib/rlxc2) with a container of the same name:
    # what it makes on the host, its systemd-machined machine included, is its own.
    printf '[[network]]\ntype = "empty"\n' > "$work/bb2.toml"
    "$rlxc" create -q -P "$root/var/lib/rlxc2" -n bb -t download -d busybox -r "$bb_rel" \
        -f "$work/bb2.toml" >/dev/null
    # Unprivileged ones: their ids 0-65535 are a host range of their own (written by hand, as
    # rlxc-create would allocate them from root's /etc/subuid on a host that has ranges).
    printf '[[network]]\ntype = "empty"\n[limits]\nmemory = "256M"\n' > "$work/udeb.toml"
    "$rlxc" create -q -n udeb -t download -d debian -r bookworm -f "$work/udeb.toml" >/dev/null
    "$rlxc" create -q -n ubb -t download -d busybox -r "$bb_rel" -f "$work/bb.toml" >/dev/null
    # A layout this host cannot give (refused at start), and the newer systemds where the
    # fixture mirror has them (build-mirror.sh builds them when the Debian archive answers).
    printf 'cgroup_layout = "hybrid"\n[[network]]\ntype = "empty"\n' > "$work/bbh.toml"
    "$rlxc" create -q -n bbh -t download -d busybox -r "$bb_rel" -f "$work/bbh.toml" >/dev/null
    for rel in trixie sid; do
        if grep -q "^debian;$rel;amd64;default;" "$fixtures/mirror/meta/1.0/index-system"; then
            "$rlxc" create -q -n "$rel" -t download -d debian -r "$rel" -f "$work/udeb.toml" >/dev/null
        fi
    done
    # bookworm with sysvinit: the stock inittab (sysv) and LXC's powerfail line (sysvpf).
    printf '[[network]]\ntype = "empty"\n' > "$work/sysv.toml"
    for v in sysvinit:sysv sysvinit-powerfail:sysvpf; do
        if grep -q "^debian;bookworm;amd64;${v%%:*};" "$fixtures/mirror/meta/1.0/index-system"; then
            "$rlxc" create -q -n "${v#*:}" -t download -d debian -r bookworm --variant "${v%%:*}" \
                -f "$work/sysv.toml" >/dev/null
        fi
    done
    # Unprivileged, as new containers are by default (systemd 259+ needs it for its
    # services' credentials: sys/seccomp.rs).
    for c in udeb:2000000000 ubb:2000065536 trixie:2000131072 sid:2000196608; do
        [ -d "$root/var/lib/rlxc/${c%%:*}" ] || continue
        printf '\n[idmap]\nuid = %s\ngid = %s\n' "${c#*:}" "${c#*:}" >> "$root/var/lib/rlxc/${c%%:*}/config.toml"
    done
fi
kill "$server_pid"; server_pid=

mke2fs -q -t ext4 -d "$root" "$work/disk.img" 4G
rm -rf "$root"

accel=tcg
if [ -w /dev/kvm ] && grep -Eqw 'vmx|svm' /proc/cpuinfo; then accel=kvm; fi
echo "vm: booting ${kernel#/boot/} ($accel)" >&2
qemu-system-x86_64 -machine q35,accel=$accel -m 2048 -smp 2 -nographic \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 root=/dev/vda rw init=/usr/lib/systemd/systemd quiet systemd.show_status=0" \
    -drive "file=$work/disk.img,if=virtio,format=raw" -nic none \
    > "$work/serial.log" 2>&1 &
qemu_pid=$!
# TCG boots the VM and then the container's systemd under emulation: allow 20 minutes.
deadline=$(( $(date +%s) + 1200 ))
while kill -0 "$qemu_pid" 2>/dev/null; do
    grep -aq 'RLXC-V2 DONE' "$work/serial.log" 2>/dev/null && break
    if [ "$(date +%s)" -gt "$deadline" ]; then echo "vm: no result within 20 minutes" >&2; break; fi
    sleep 2
done
# Give the guest a moment to power off cleanly, then make sure QEMU is gone.
for _ in $(seq 30); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 1; done
kill "$qemu_pid" 2>/dev/null || true
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=

tr -d '\r' < "$work/serial.log" | grep -a '^RLXC-V2 ' || true
if tr -d '\r' < "$work/serial.log" | grep -aq '^RLXC-V2 DONE' && ! grep -aq '^RLXC-V2 FAIL' "$work/serial.log"; then
    exit 0
fi
echo "vm: the guest test failed or did not finish; the end of its console:" >&2
tr -d '\r' < "$work/serial.log" | tail -40 >&2
exit 1
