#!/usr/bin/env bash
# A benchmark, not a test: a pull of a five-layer image of about 50 MB
# from a docker-registry on 127.0.0.1, by `mini-docker pull`, by `skopeo
# copy` to an OCI directory and by `podman pull`, in one run, each into a
# fresh store every time; then the on-disk size of two images that share
# their base layer against the sum of their sizes.
#
#   sudo bash scripts/bench-pull.sh [RUNS]      # RUNS of each, default 5
#
# Writes book/src/measurements/pull.txt, which the book's chapter 9 includes
# and the README points at; it is never edited by hand. Everything else
# lives in a temporary directory removed at the end, the registry with it.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
out=book/src/measurements/pull.txt
[ "$(id -u)" -eq 0 ] || { echo "bench-pull: needs root (mini-docker's store is root's; podman as root)" >&2; exit 2; }
for tool in docker-registry skopeo umoci podman hyperfine; do
  command -v "$tool" >/dev/null || { echo "bench-pull: $tool is missing: sudo bash scripts/provision.sh" >&2; exit 2; }
done

cargo build --release --locked --bin mini-docker >&2
md=$PWD/target/release/mini-docker

work=$(mktemp -d /var/tmp/bench-pull.XXXXXX)
registry_pid=
cleanup() {
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The registry, on a free port of 127.0.0.1.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $host
  secret: bench
EOF
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
registry_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

# Five layers of 10 MB that gzip cannot shrink (so ~50 MB on the wire),
# and a second image with the same base and one small layer of its own.
layer() { # NAME MB: a tar of one file of random bytes
  mkdir -p "$work/tree-$1"
  head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$work/tree-$1/$1.bin"
  tar -C "$work/tree-$1" -cf "$work/$1.tar" .
}
umoci init --layout "$work/layout"
umoci new --image "$work/layout:big"
umoci new --image "$work/layout:other"
for i in 1 2 3 4 5; do
  layer "l$i" 10
  umoci raw add-layer --image "$work/layout:big" "$work/l$i.tar"
done
umoci raw add-layer --image "$work/layout:other" "$work/l1.tar"
layer small 1
umoci raw add-layer --image "$work/layout:other" "$work/small.tar"
for tag in big other; do
  skopeo copy -q --dest-tls-verify=false "oci:$work/layout:$tag" "docker://$host/bench/$tag:1"
done

# median_s PREPARE COMMAND: hyperfine's median, in seconds.
median_s() {
  local csv=$work/hyperfine.csv
  hyperfine --warmup 1 --runs "$runs" --style none --prepare "$1" --export-csv "$csv" -- "$2" >/dev/null
  awk -F, 'NR == 2 { printf "%.2f", $4 }' "$csv"
}
export CONTAINER_LAB_ROOT=$work/lab
ours=$(median_s "rm -rf $work/lab" "$md pull -q $host/bench/big:1")
theirs=$(median_s "rm -rf $work/oci" "skopeo copy -q --src-tls-verify=false docker://$host/bench/big:1 oci:$work/oci:big")
podman=$(median_s "rm -rf $work/podman $work/podman-run" \
  "podman --root $work/podman --runroot $work/podman-run pull -q --tls-verify=false $host/bench/big:1")

# The shared base: both images in one fresh store.
rm -rf "$work/lab"
"$md" pull -q "$host/bench/big:1" >/dev/null
"$md" pull -q "$host/bench/other:1" >/dev/null
sizes=$("$md" image inspect "$host/bench/big:1" "$host/bench/other:1" |
  python3 -c 'import json,sys; print(sum(i["Size"] for i in json.load(sys.stdin)))')
stored=$(du -sb "$work/lab/lib/images/layers" | cut -f1)
wire=$(du -sb "$work/lab/lib/images/blobs" | cut -f1)

mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
{
  echo "Measured by scripts/bench-pull.sh on $(date -u +%Y-%m-%d): $(nproc) cores,"
  echo "kernel $(uname -r); $(skopeo --version), $(podman --version)."
  echo
  echo "Pull of a 5-layer image of 52 MB from docker-registry on 127.0.0.1,"
  echo "into an empty store each time, median of $runs (hyperfine)"
  printf '  %-34s %6s s   %s\n' "mini-docker pull" "$ours" "$(ratio "$ours" "$theirs") skopeo's time"
  printf '  %-34s %6s s   %s\n' "skopeo copy to an OCI directory" "$theirs" "1.00x"
  printf '  %-34s %6s s   %s\n' "podman pull" "$podman" "$(ratio "$podman" "$theirs") skopeo's time"
  echo
  echo "Two images sharing their 10 MB base layer, pulled into one store"
  printf '  %-34s %s\n' "their sizes, added" "$(mb "$sizes")"
  printf '  %-34s %s\n' "unpacked layers on disk" "$(mb "$stored")"
  printf '  %-34s %s\n' "blobs on disk (as downloaded)" "$(mb "$wire")"
} >"$out"
cat "$out"
