#!/bin/sh
# The Debian package on a clean Debian 12 (see host.sh, RLXC_VM_DEB): runs at every boot
# of the VM as a oneshot service. First boot: install the package (its postinst starts
# rlxc.service, which starts the two autostart containers) and reboot. Second boot: both
# came back, in order; a restart of rlxc.service and a reinstall of the same package
# leave them running; `systemctl stop rlxc` halts them within its timeout; rlxc@.service
# runs one container; apt-get remove keeps their data, purge removes /etc/rlxc only.
. /usr/local/lib/rlxc-vm-lib.sh
phase=/var/lib/rlxc-vm-phase
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

state() { rlxc info -s -n "$1" 2>/dev/null | awk '{print $NF}'; }
init_pid() { rlxc info -n "$1" | awk '/^PID:/{print $2}'; }
# When a process started, in clock ticks since boot (field 22 of its stat).
started_at() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $20}'; }
monitor_of() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $2}'; }

if [ ! -e "$phase" ]; then
    check "dpkg -i the package" dpkg -i /root/rlxc.deb
    check "rlxc.service and rlxc-net.service enabled" sh -c "systemctl is-enabled rlxc.service && systemctl is-enabled rlxc-net.service"
    check "rlxc.service active after install" systemctl is-active rlxc.service
    check "postinst gave root host ids" sh -c "grep -qx 'root:1000000:1000000000' /etc/subuid && grep -qx 'root:1000000:1000000000' /etc/subgid"
    check "man pages and completions installed" sh -c "test -f /usr/share/man/man1/rlxc-autostart.1.gz && test -f /usr/share/man/man5/rlxc-config.5.gz && test -f /usr/share/bash-completion/completions/rlxc-start && test -f /usr/share/zsh/vendor-completions/_rlxc && test -f /usr/share/fish/vendor_completions.d/rlxc.fish"
    check "rlxc-* names installed" test -L /usr/bin/rlxc-autostart
    check "autostart containers started at install" sh -c "[ \"$(state first)\" = RUNNING ] && [ \"$(state second)\" = RUNNING ]"
    echo 1 > "$phase"
    # The test unit's ExecStopPost powers off unless this says a reboot is under way.
    touch /run/rlxc-vm-rebooting
    say "rebooting"
    systemctl reboot --no-block
    exit 0
fi

say "booted again"
check "first running after the reboot" sh -c "[ \"$(state first)\" = RUNNING ]"
check "second running after the reboot" sh -c "[ \"$(state second)\" = RUNNING ]"
p1=$(init_pid first); p2=$(init_pid second)
hz=$(getconf CLK_TCK)
t1=$(started_at "$p1"); t2=$(started_at "$p2")
check "first (order 1) started before second (order 2), after its 2 s delay" sh -c "[ $t2 -ge \$(( $t1 + 2 * $hz - $hz / 10 )) ]"
m1=$(monitor_of "$p1")
check "monitors live in rlxc's own cgroup, not rlxc.service's" sh -c "grep -q '^0::/rlxc/monitors-' /proc/$m1/cgroup"
check "rlxc-autostart -L --json lists both" sh -c "rlxc autostart -L --json | grep -q '\"name\": \"second\"'"
check "systemctl restart rlxc keeps them running" sh -c "systemctl restart rlxc && [ \"\$(rlxc info -n first | awk '/^PID:/{print \$2}')\" = $p1 ] && [ \"\$(rlxc info -n second | awk '/^PID:/{print \$2}')\" = $p2 ]"
check "installing the same package again keeps them running" sh -c "dpkg -i /root/rlxc.deb && [ \"\$(rlxc info -n first | awk '/^PID:/{print \$2}')\" = $p1 ] && [ \"\$(rlxc info -n second | awk '/^PID:/{print \$2}')\" = $p2 ]"
s0=$(date +%s)
check "systemctl stop rlxc" systemctl stop rlxc
s1=$(date +%s)
say "info systemctl stop rlxc took $((s1 - s0)) s"
check "systemctl stop rlxc halted both within its 60 s timeout" sh -c "[ $((s1 - s0)) -le 60 ] && [ \"$(state first)\" = STOPPED ] && [ \"$(state second)\" = STOPPED ]"
check "systemctl start rlxc@second" systemctl start rlxc@second
check "rlxc@second is active and its container runs" sh -c "systemctl is-active rlxc@second && [ \"\$(rlxc info -s -n second | awk '{print \$NF}')\" = RUNNING ]"
p2=$(init_pid second)
check "rlxc@second's monitor is in the unit" sh -c "grep -q 'rlxc@second.service' /proc/$(monitor_of "$p2")/cgroup"
check "systemctl stop rlxc@second halts it" sh -c "systemctl stop rlxc@second && [ \"\$(rlxc info -s -n second | awk '{print \$NF}')\" = STOPPED ]"
check "apt-get remove rlxc" env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q rlxc
check "remove keeps the containers and /etc/rlxc" sh -c "test -f /var/lib/rlxc/first/config.toml && test -d /var/lib/rlxc/second/rootfs && test -f /etc/rlxc/rlxc.toml && ! test -e /usr/bin/rlxc"
check "apt-get purge rlxc" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q rlxc
check "purge removes /etc/rlxc only" sh -c "! test -e /etc/rlxc && test -f /var/lib/rlxc/first/config.toml"
say DONE
