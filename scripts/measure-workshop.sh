#!/usr/bin/env bash
# Measures, on this machine, what the book's workshop page plans with: how
# long each chapter runs straight through (--yes, no pauses) and how long
# `lab check` takes for each exercise's reference solution (build excluded:
# the binaries are built first). Writes the table to
# book/src/measurements/workshop.txt, which the page includes; never edit
# that file by hand.
#
#   sudo bash scripts/measure-workshop.sh
#
# Every run happens in a network namespace of its own (chapter 6 makes its
# bridge there, not on this machine) and with the lab's state in a
# temporary directory. Takes a few minutes.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "measure-workshop: needs root (the chapters and checks run as root); run it with sudo" >&2; exit 1; }
command -v unshare >/dev/null || { echo "measure-workshop: unshare is missing; install util-linux" >&2; exit 1; }

export CARGO_INCREMENTAL=0
cargo build --quiet --locked --bins
cargo build --quiet --locked -p lab-exercises --examples
debug=target/debug

state=$(mktemp -d /tmp/measure-workshop.XXXXXX)
trap 'rm -rf "$state"' EXIT
# Chapter 7's container root (uid 100000 on the host) must pass through it.
chmod 711 "$state"
mkdir -p "$state/bin"
ids=$("$debug/lab" list | awk '$1 ~ /^[0-9]+$/ { print $2 }')
for id in $ids; do
  ln -s "$PWD/$debug/examples/$id-solution" "$state/bin/$id"
done

# Runs its arguments in a network namespace of its own, with lo up.
isolated() {
  unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh "$@"
}

# Seconds, two decimals, that the command took; "failed" when it failed.
seconds() {
  local start end
  start=$(date +%s%N)
  if isolated "$@" >"$state/out" 2>&1 </dev/null; then
    end=$(date +%s%N)
    awk -v ns=$((end - start)) 'BEGIN { printf "%.2f s", ns / 1e9 }'
  else
    echo "failed (exit $?)"
  fi
}

layout="cgroup v1 or hybrid"
[ -f /sys/fs/cgroup/cgroup.controllers ] && layout="cgroup v2"
out=book/src/measurements/workshop.txt
{
  echo "Measured by scripts/measure-workshop.sh on $(date -u +%F):"
  echo "$(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r), $layout."
  echo
  printf '%-10s %-24s %s\n' chapter "runs through (--yes)" "lab check of each solution"
  for chapter in $(ls chapters | sed -n 's/^\(ch[0-9][0-9]\)_.*\.rs$/\1/p'); do
    ran=$(CONTAINER_LAB_ROOT="$state/lab" seconds "$debug/$chapter" --yes)
    checks=""
    for id in $ids; do
      case "$id" in "$chapter"-*) ;; *) continue ;; esac
      took=$(CONTAINER_LAB_ROOT="$state/lab" LAB_PROGRESS="$state/progress" \
        LAB_EXERCISE_BINARIES="$state/bin" NO_COLOR=1 seconds "$debug/lab" check "$id")
      checks="$checks${checks:+, }$id $took"
    done
    printf '%-10s %-24s %s\n' "$chapter" "$ran" "${checks:--}"
  done
} >"$out.new"
mv "$out.new" "$out"
cat "$out"
