#!/usr/bin/env bash
# Runs prebuilt test binaries one after another and fails if any failed;
# used inside the cgroup v2 guest, where cargo itself is not needed.
set -uo pipefail
cd "$(dirname "$0")/.."
echo "kernel $(uname -r), cgroup layout: $(stat -fc %T /sys/fs/cgroup)"
failed=0
for exe in "$@"; do
  echo "---- $exe"
  "$exe" --test-threads=2 --color never || failed=1
done
exit "$failed"
