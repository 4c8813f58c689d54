#!/bin/sh
# Gives root a range of host ids for unprivileged containers when it has none:
# root:1000000:1000000000 in /etc/subuid and /etc/subgid, what Incus and LXD advise and
# what `rlxc-create --allocate` adds (src/idmap). Nothing is changed when root already has
# a line in a file, or when another line there overlaps the range (then it says so and
# rlxc-create will say which line to add). Run by packaging/setup.sh and the package's
# postinst; safe to run again.
set -eu
start=1000000 count=1000000000
for f in /etc/subuid /etc/subgid; do
    [ -e "$f" ] || : > "$f"
    if grep -q '^root:' "$f"; then
        continue
    fi
    clash=$(awk -F: -v s=$start -v c=$count \
        'NF == 3 && $2 < s + c && $2 + $3 > s { print; exit }' "$f")
    if [ -n "$clash" ]; then
        echo "rlxc: not adding root:$start:$count to $f: it overlaps '$clash'" >&2
        continue
    fi
    echo "root:$start:$count" >> "$f"
    echo "rlxc: added root:$start:$count to $f (host ids for unprivileged containers)"
done
