#!/usr/bin/env bash
# Start-up benchmark: the time from start to exit of a container running
# `true`, measured with hyperfine, every line doing the same work:
#
#   - the same namespaces: PID, mount, UTS, IPC and network;
#   - the same root filesystem: the lab's busybox tree (the OCI runtimes
#     on one bundle made by `runc spec`; mini-docker over its image);
#   - the same seccomp filter: Docker's default profile, which mini-docker
#     installs, in the bundle too (from `lab-runc spec --docker-seccomp`;
#     runc's template has none), compiled by each runtime its own way;
#   - a cgroup: crun, runc and lab-runc one directory in every cgroup
#     hierarchy, at the same path beneath our own cgroup, with the
#     bundle's device list; mini-docker a directory in the hierarchy of
#     every controller (the lines say so);
#   - state where each tool keeps it by default, on a tmpfs (/run): the
#     runtimes' --root and mini-docker's run directory, while mini-docker's
#     records and writable layers stay on disk, in its data directory;
#   - hyperfine itself started inside one private mount namespace and
#     cgroup namespace, where the cgroup filesystems are rooted at our own
#     cgroup and a hybrid host's cgroup v2 mount is out of sight, so that
#     crun 1.8 accepts the layout, every runtime runs directly, without a
#     wrapper, and every cgroup lies beneath our own (also in the sandbox).
#
#   sudo bash scripts/bench.sh [RUNS]      # default 100 runs each
#
# Writes book/src/measurements/bench.md (the table the book includes) and
# puts the same table into README.md between its bench markers. In the
# cgroup v2 guest, whose files are read-only and which has no disk, after
# a build here (book/src/measurements/bench-v2.md is its output):
#
#   BENCH_NO_BUILD=1 BENCH_WORK=/run/lab-bench BENCH_OUT=/tmp/bench-v2.md \
#   LAB_GUEST_ENV="BENCH_NO_BUILD BENCH_WORK BENCH_OUT" bash scripts/v2-guest.sh \
#     -- bash -c 'bash scripts/bench.sh 50; cat /tmp/bench-v2.md'
#
# A benchmark, not a test: the numbers depend on the machine and never
# fail anything.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
out=${BENCH_OUT:-book/src/measurements/bench.md}
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (containers); run it with sudo" >&2; exit 1; }
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  bash scripts/provision.sh --with-bench >/dev/null
  export PATH="$HOME/.cargo/bin:$PATH"
  cargo build --release --quiet --bin mini-docker --bin lab-runc
fi
mini=$PWD/target/release/mini-docker lab=$PWD/target/release/lab-runc

work=${BENCH_WORK:-$PWD/target/bench}
rm -rf "$work"
mkdir -p "$work"
export CONTAINER_LAB_ROOT=$work/lab
"$mini" run --rm --network none busybox true   # builds and caches the image

# hyperfine runs in a cgroup namespace of its own (scripts/cgroup-ns.sh),
# with the cgroup filesystems mounted again there, rooted at our own
# cgroup in every hierarchy, so that this one path lies beneath our own
# cgroup for every runtime, whatever it makes of it.
cgroup="/lab-bench-$$"

# The bundle: runc's template, the lab's busybox tree, `true`.
bundle=$work/bundle
mkdir -p "$bundle"
# The busybox image's one layer, where the image store unpacked it.
busybox_layer=$("$mini" image inspect busybox | python3 -c \
  'import json, sys; print(json.load(sys.stdin)[0]["GraphDriver"]["Data"]["LowerDir"].split(":")[0])')
cp -a "$busybox_layer" "$bundle/rootfs"
(cd "$bundle" && runc spec)
mkdir -p "$work/seccomp"
"$lab" spec --docker-seccomp --bundle "$work/seccomp"
python3 - "$bundle/config.json" "$cgroup" "$work/seccomp/config.json" <<'PY'
import json, sys
path, cgroup, seccomp = sys.argv[1], sys.argv[2], sys.argv[3]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["/bin/true"]
spec["linux"]["cgroupsPath"] = cgroup
spec["linux"]["seccomp"] = json.load(open(seccomp))["linux"]["seccomp"]
json.dump(spec, open(path, "w"), indent=2)
PY

hybrid=no
if [ -d /sys/fs/cgroup/unified ] && [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then hybrid=yes; fi
names=(
  "unshare: the namespaces only"
  "mini-docker run --rm --network none busybox true: overlay root, cgroup in every hierarchy, seccomp, record and layer on disk, log copier"
  "crun run: bundle, cgroup in every hierarchy, seccomp, state on tmpfs"
  "runc run: bundle, cgroup in every hierarchy, seccomp, state on tmpfs"
  "lab-runc run: the same bundle, cgroup in every hierarchy, seccomp, state on tmpfs"
)
commands=(
  "unshare --fork --pid --mount-proc --uts --ipc --mount --net true"
  "$mini run --rm --network none busybox true"
  "crun --root $work/state/crun run --bundle $bundle bench-crun"
  "runc --root $work/state/runc run --bundle $bundle bench-runc"
  "$lab --root $work/state/lab-runc run --bundle $bundle bench-lab"
)
args=()
for i in "${!names[@]}"; do args+=(-n "${names[$i]}" "${commands[$i]}"); done
# How busy the machine was: a shared machine's load shows in every line.
load=$(cut -d' ' -f1-3 /proc/loadavg)
# The lines must leave nothing behind; what a runtime left is removed.
mkdir -p "$work/state" "$work/lab/run"
bash scripts/cgroup-ns.sh -- bash -c '
  cgroup=$1 work=$2; shift 2
  # The default places of runtime state, /run, are tmpfs: so here, in
  # this mount namespace only (it goes with it).
  mount -t tmpfs -o mode=0711 tmpfs "$work/state"
  mount -t tmpfs -o mode=0711 tmpfs "$work/lab/run"
  status=0
  hyperfine -N --warmup 5 --runs "$@" || status=$?
  for base in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    if [ -d "$base${cgroup#/}" ]; then rmdir "$base${cgroup#/}" 2>/dev/null || true; fi
  done
  exit $status
' bench "$cgroup" "$work" "$runs" --export-json "$work/results.json" --style basic "${args[@]}"

# Medians, and their ratio to crun's, from hyperfine's raw times.
python3 - "$work/results.json" "$runs" "$hybrid" "$load" > "$work/results.md" <<'PY'
import json, platform, os, statistics, subprocess, sys, datetime
results = json.load(open(sys.argv[1]))["results"]
runs, hybrid, load = sys.argv[2], sys.argv[3] == "yes", sys.argv[4]
medians = [(r["command"], statistics.median(r["times"]) * 1000) for r in results]
crun = next(m for name, m in medians if name.startswith("crun"))
print("| start to exit of `true` | median | relative to crun |")
print("|---|---:|---:|")
for name, median in medians:
    print(f"| {name} | {median:.1f} ms | {median / crun:.2f}x |")
def version(tool):
    return subprocess.run([tool, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
layout = "cgroup v1 hybrid (v2 mount hidden from every line)" if hybrid else subprocess.run(
    ["stat", "-fc", "%T", "/sys/fs/cgroup"], capture_output=True, text=True).stdout.strip()
print()
print(f"Measured on {datetime.date.today()}, {os.cpu_count()} cores, kernel {platform.release()}, "
      f"{layout}, {version('crun')}, {version('runc')}, {runs} runs each, "
      f"load average {load} when it began.")
PY
cat "$work/results.md"
if [ -z "${BENCH_OUT:-}" ] || [ "$out" = book/src/measurements/bench.md ]; then
  cp "$work/results.md" "$out"
  python3 - README.md "$out" <<'PY'
import re, sys
readme, table = sys.argv[1], open(sys.argv[2]).read()
text = open(readme).read()
begin, end = "<!-- bench:begin (scripts/bench.sh writes this) -->", "<!-- bench:end -->"
start, stop = text.index(begin) + len(begin), text.index(end)
open(readme, "w").write(text[:start] + "\n" + table + text[stop:])
PY
elif [ -n "${BENCH_OUT:-}" ]; then
  cp "$work/results.md" "$out"
fi
