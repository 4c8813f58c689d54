# Shared by the guest scripts (installed in the VM as /usr/local/lib/rlxc-vm-lib.sh): every
# result is a line "RLXC-V2 ok|FAIL WHAT" on the serial console.
out=/dev/ttyS0
say() { echo "RLXC-V2 $*" > "$out"; }
ok() { say "ok $*"; }
fail() { say "FAIL $*"; }
check() { # what command…
    what=$1; shift
    if "$@" > /tmp/check.out 2>&1; then ok "$what"; else fail "$what: $(tr '\n' ' ' < /tmp/check.out | cut -c1-300)"; fi
}
