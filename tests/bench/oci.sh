#!/usr/bin/env bash
# Benchmark: rlxc-create -t oci vs lxc-create -t oci (LXC's lxc-oci: skopeo + umoci) on the
# same image from the same local registry (Debian's docker-registry on 127.0.0.1), one run,
# ratios printed (targets: cold pull + create <= 0.5x, create with the layers cached <= 0.1x).
#
#   tests/bench/oci.sh [ITERATIONS]        (as root; default 3)
#
# The image is the fixture's debootstrapped Debian as one gzip layer, written as an OCI
# layout here and pushed with skopeo. Both tools talk plain http to the registry (rlxc:
# --plain-http; skopeo: a registries.conf drop-in of this run marking it insecure, removed
# at exit: this skopeo reads no CONTAINERS_REGISTRIES_CONF, and lxc-oci passes it no
# options). "Cold" empties each tool's cache first; "cached" keeps it.
set -euo pipefail

iterations=${1:-3}
. "$(dirname "$0")/lib.sh"
bench_prelude --only debian
for t in skopeo umoci jq docker-registry; do
    command -v "$t" >/dev/null || { echo "$t is missing: packaging/setup.sh --deps installs it" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/rlxc-bench-oci.XXXXXX)
registry_pid=
dropin=
cleanup() {
    [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
    [ -n "$dropin" ] && rm -f "$dropin"
    # This image's blobs in LXC's cache (see lxc_blobs below).
    [ -f "$work/blobs" ] && while read -r hex; do rm -f "/var/cache/lxc/sha256/$hex"; done < "$work/blobs"
    for c in $(lxc lxc-ls 2>/dev/null); do lxc lxc-destroy -n "$c" >/dev/null 2>&1 || true; done
    rm -rf "$work" "$(bench_runpath)"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
dropin=/etc/containers/registries.conf.d/rlxc-bench-oci-$port.conf
mkdir -p "${dropin%/*}"
printf '[[registry]]\nlocation = "127.0.0.1:%s"\ninsecure = true\n' "$port" > "$dropin"

# The OCI layout: one gzip layer of the debootstrap tree, a config that boots /sbin/init.
layout=$work/layout
python3 - "$fixtures/debootstrap-bookworm-amd64.tar" "$layout" "$work/blobs" <<'PY'
import gzip, hashlib, json, os, sys
src, out, names = sys.argv[1:]
os.makedirs(f"{out}/blobs/sha256")
def blob(b):
    h = hashlib.sha256(b).hexdigest()
    open(f"{out}/blobs/sha256/{h}", "wb").write(b)
    return {"digest": "sha256:" + h, "size": len(b)}
tar = open(src, "rb").read()
layer = blob(gzip.compress(tar, 1)) | {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}
cfg = blob(json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/sbin/init"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}}).encode())
man = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": cfg | {"mediaType": "application/vnd.oci.image.config.v1+json"}, "layers": [layer]}).encode())
open(f"{out}/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [man | {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "annotations": {"org.opencontainers.image.ref.name": "12"}}]}))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
open(names, "w").write("\n".join(d["digest"].split(":")[1] for d in (layer, cfg, man)) + "\n")
PY
# Byte for byte: the blobs LXC caches are the ones named in $work/blobs.
skopeo --insecure-policy copy --quiet --preserve-digests "oci:$layout:12" "docker://127.0.0.1:$port/bench/debian:12"
url="docker://127.0.0.1:$port/bench/debian:12"

cat > "$work/rlxc.toml" <<TOML
lxcpath = "$work/rlxc-lib"
cachepath = "$work/rlxc-cache"
runpath = "$work/rlxc-run"
TOML
export RLXC_CONFIG="$work/rlxc.toml"

rlxc_create() { "$rlxc" create -q -t oci -n "$1" --privileged -- -u "$url" --plain-http >/dev/null; }
lxc_create() { lxc lxc-create -q -t oci -n "$1" -- -u "$url" >/dev/null 2>&1; }

# lxc-oci keeps blobs in skopeo's shared blob dir, LOCALSTATEDIR/cache/lxc/sha256 (a
# path built into LXC): a cold LXC run removes this image's blobs there and nothing else.
lxc_blobs=/var/cache/lxc/sha256
declare -a rc lc rw lw
for i in $(seq "$iterations"); do
    rm -rf "$work/rlxc-cache"
    while read -r hex; do rm -f "$lxc_blobs/$hex"; done < "$work/blobs"
    # sync first: the previous create's dirty pages are not written back on this one's time.
    sync; t=$(stamp); rlxc_create "rc$i"; rc+=("$(elapsed "$t")")
    sync; t=$(stamp); lxc_create "lc$i"; lc+=("$(elapsed "$t")")
    sync; t=$(stamp); rlxc_create "rw$i"; rw+=("$(elapsed "$t")")
    sync; t=$(stamp); lxc_create "lw$i"; lw+=("$(elapsed "$t")")
    for r in "$work/rlxc-lib/rc$i" "$work/lxc-lib/lc$i" "$work/rlxc-lib/rw$i" "$work/lxc-lib/lw$i"; do
        [ -e "$r/rootfs/etc/os-release" ] || { echo "no rootfs made at $r" >&2; exit 1; }
    done
done
m() { printf '%s\n' "$@" | median; }
echo "samples (s): rlxc cold ${rc[*]}; lxc cold ${lc[*]}; rlxc cached ${rw[*]}; lxc cached ${lw[*]}"
printf 'cold pull + create: rlxc %.2f s, lxc-create -t oci %.2f s, ratio %.3f (target <= 0.5)\n' \
    "$(m "${rc[@]}")" "$(m "${lc[@]}")" "$(ratio "$(m "${rc[@]}")" "$(m "${lc[@]}")")"
printf 'cached create:      rlxc %.2f s, lxc-create -t oci %.2f s, ratio %.3f (target <= 0.1)\n' \
    "$(m "${rw[@]}")" "$(m "${lw[@]}")" "$(ratio "$(m "${rw[@]}")" "$(m "${lw[@]}")")"
