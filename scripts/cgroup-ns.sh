#!/usr/bin/env bash
# Runs a command in a mount namespace and a cgroup namespace of its own,
# with every cgroup filesystem mounted again there, rooted at our own
# cgroup in each hierarchy: whatever cgroup path a runtime makes of a
# config.json (beneath its own cgroup as runc does, from the root as crun
# does, or absolute), it lies beneath ours. A hybrid host's v2 mount,
# which holds no controllers, is left out of sight (crun 1.8 refuses the
# hybrid layout), a scratch tmpfs of this namespace's own in its place:
# crun still makes a directory there, which must not land in the host's
# /sys/fs/cgroup tmpfs beneath the v2 mount. The same as
# src/engine/oci/external.rs does for `mini-docker --runtime`.
#
#   sudo bash scripts/cgroup-ns.sh -- COMMAND [ARGS...]
set -euo pipefail
[ "${1:-}" = -- ] && shift
[ $# -ge 1 ] || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
hybrid=no
if [ -d /sys/fs/cgroup/unified ] && [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then hybrid=yes; fi
# shellcheck disable=SC2016
exec unshare --mount --cgroup --propagation private -- bash -c '
  set -e
  hybrid=$1; shift
  awk '"'"'{ split($0, parts, " - "); split(parts[1], a, " "); split(parts[2], b, " ");
         if (b[1] == "cgroup" || b[1] == "cgroup2") print a[5], b[1], b[3] }'"'"' /proc/self/mountinfo |
  while read -r point fstype options; do
    # The superblock options but rw: a v1 hierarchy mounts again only with its own.
    options=$(printf %s "$options" | tr , "\n" | grep -vx -e rw -e ro | paste -sd, -)
    umount -l "$point"
    if [ "$fstype" = cgroup2 ] && [ "$hybrid" = yes ]; then
      mount -t tmpfs -o nosuid,nodev,noexec,size=64k,mode=0755 tmpfs "$point"
      continue
    fi
    mount -t "$fstype" -o "nosuid,nodev,noexec${options:+,$options}" "$fstype" "$point"
  done
  exec "$@"
' cgroup-ns "$hybrid" "$@"
