#!/usr/bin/env bash
# Runs a command (a test suite, a chapter) so that it cannot collide with
# another checkout of the lab doing the same on this machine at the same
# time: for developers working on several branches at once.
#
#   sudo bash scripts/sandbox.sh NAME -- COMMAND [ARGS...]
#
# - a private mount namespace with fresh tmpfs over the lab's fixed state
#   paths (/run/container-lab, /var/lib/container-lab, /run/lab-runc and the
#   tests' /run/container-lab-tests), so state, records and locks are its own;
# - a cgroup NAME beneath this shell's own cgroup in every hierarchy, which
#   the command runs in, so the lab's cgroups land beneath it (the lab always
#   creates its cgroups beneath its own); removed again at the end.
# Network tests already make network namespaces of their own.
set -euo pipefail
[ $# -ge 3 ] && [ "$2" = -- ] || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
name=$1; shift 2
case "$name" in *[!a-zA-Z0-9_-]*|"") echo "sandbox: NAME must be letters, digits, - or _" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "sandbox: needs root" >&2; exit 2; }

# One directory per hierarchy this shell is in (v1 controllers and the v2
# or hybrid unified mount); named hierarchies such as systemd's are left alone.
cgroup_dirs=()
while IFS=: read -r _ controllers path; do
  case "$controllers" in
    "") base=/sys/fs/cgroup/unified; [ -f /sys/fs/cgroup/cgroup.controllers ] && base=/sys/fs/cgroup ;;
    name=*) continue ;;
    *) base=/sys/fs/cgroup/${controllers%%,*} ;;
  esac
  [ -d "$base" ] || continue
  cgroup_dirs+=("$base${path%/}/sandbox-$name")
done </proc/self/cgroup

cleanup() {
  local dir
  for dir in "${cgroup_dirs[@]}"; do
    [ -d "$dir" ] || continue
    # Whatever is left inside was made by the command; deepest first.
    find "$dir" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
    # Move this shell back to the parent before removing the directory.
    if grep -qx "$$" "$dir/cgroup.procs" 2>/dev/null; then
      echo $$ >"$(dirname "$dir")/cgroup.procs" 2>/dev/null || true
    fi
    rmdir "$dir" 2>/dev/null || echo "sandbox: could not remove $dir (still in use?)" >&2
  done
}
trap cleanup EXIT

for dir in "${cgroup_dirs[@]}"; do
  mkdir -p "$dir"
  # A new v1 cpuset is empty until it is given the parent's CPUs and nodes.
  for file in cpuset.cpus cpuset.mems; do
    [ -f "$dir/$file" ] && cat "$(dirname "$dir")/$file" >"$dir/$file"
  done
  echo $$ >"$dir/cgroup.procs"
done

set +e
unshare --mount --propagation private -- bash -c '
  set -e
  for path in /run/container-lab /var/lib/container-lab /run/lab-runc /run/container-lab-tests; do
    mkdir -p "$path"
    mount -t tmpfs -o mode=0755 sandbox "$path"
  done
  exec "$@"
' sandbox "$@"
status=$?
set -e
exit "$status"
