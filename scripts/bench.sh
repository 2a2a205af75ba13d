#!/usr/bin/env bash
# Start-up benchmark: the time from start to exit of a container running
# `true`, for mini-docker, crun and runc on the same machine, with the same
# isolation (PID, mount, UTS, IPC and network namespaces, a cgroup, a
# pivot_root into a busybox root), and plain `unshare` as the floor.
#
#   sudo bash scripts/bench.sh [RUNS]        # default 100 runs each
#
# Writes target/bench/results.md (hyperfine's table). A benchmark, not a
# test: the numbers depend on the machine and never fail anything.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (containers); run it with sudo" >&2; exit 1; }
bash scripts/provision.sh --with-bench >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet --bin mini-docker

work=$PWD/target/bench
rm -rf "$work"
mkdir -p "$work"
export CONTAINER_LAB_ROOT=$work/lab
mini=$PWD/target/release/mini-docker
"$mini" run --rm --network none busybox true   # builds and caches the image

# An OCI bundle with the same root filesystem, made by runc's own template.
bundle=$work/bundle
mkdir -p "$bundle"
cp -a "$CONTAINER_LAB_ROOT/lib/images/busybox" "$bundle/rootfs"
(cd "$bundle" && runc spec)
# Our own cgroup (the memory hierarchy's, which is the deepest on a v1
# host): runc and crun must create theirs beneath it, as the lab does.
own=$(awk -F: '$2 == "" || $2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup | tail -n1)
python3 - "$bundle/config.json" "$own" <<'PY'
import json, sys
path, own = sys.argv[1], sys.argv[2].rstrip("/")
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["/bin/true"]
spec["linux"]["cgroupsPath"] = f"{own}/container-lab-bench"
json.dump(spec, open(path, "w"), indent=2)
PY

# crun 1.8 refuses a hybrid cgroup layout outright. There it runs without a
# cgroup, in a private mount namespace where the v2 mount is hidden (the
# extra unshare and sh cost about what the first line measures); the table
# says so.
crun_command="crun run --bundle $bundle bench-crun" crun_name="crun run"
if [ -d /sys/fs/cgroup/unified ] && [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
  crun_command="unshare --mount sh -c 'umount /sys/fs/cgroup/unified && exec crun --cgroup-manager=disabled run --bundle $bundle bench-crun'"
  crun_name="crun run (no cgroup; hybrid v2 mount hidden by unshare -m)"
fi
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/results.json" --style basic \
  -n "unshare (namespaces only)" "unshare --fork --pid --mount-proc --uts --ipc --mount --net true" \
  -n "mini-docker run" "$mini run --rm --network none busybox true" \
  -n "$crun_name" "$crun_command" \
  -n "runc run" "runc run --bundle $bundle bench-runc"
# Medians (and their ratio to mini-docker's), from hyperfine's raw times.
python3 - "$work/results.json" > "$work/results.md" <<'PY'
import json, statistics, sys
results = json.load(open(sys.argv[1]))["results"]
medians = {r["command"]: statistics.median(r["times"]) * 1000 for r in results}
mini = medians["mini-docker run"]
print("| start to exit of `true` | median | relative to mini-docker |")
print("|---|---:|---:|")
for name, median in medians.items():
    print(f"| {name} | {median:.1f} ms | {median / mini:.2f}x |")
PY
{
  echo
  echo "measured on $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r), cgroup layout $(stat -fc %T /sys/fs/cgroup), $(crun --version | head -n1), $(runc --version | head -n1), ${runs} runs each"
} >> "$work/results.md"
cat "$work/results.md"
