#!/bin/busybox sh
# /init of the cgroup v2 guest's initramfs (see scripts/v2-guest.sh):
# load the modules, mount the host's root read-only over 9p, put a tmpfs
# overlay on it, switch to it, set up the usual filesystems with cgroup v2
# only, and run the harness's second stage.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in $(cat /modules/order); do insmod "/modules/$module.ko" 2>/dev/null; done

fail() { echo "v2 guest init: $*"; poweroff -f; }
stage2=$(sed -n 's/.*lab\.stage2=\([^ ]*\).*/\1/p' /proc/cmdline)
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro hostroot /lower || fail "cannot mount the host's root over 9p"
mount -t tmpfs -o size=4g,mode=755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "cannot mount the overlay"
umount /proc /sys
mount --move /dev /newroot/dev

exec switch_root /newroot /bin/bash -c '
  set -u
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mkdir -p /dev/pts /dev/shm
  mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
  mount -t tmpfs -o mode=1777 tmpfs /dev/shm
  # /tmp stays the overlay: the caller (CI clones into /tmp) and its files
  # must be visible at the same paths.
  mount -t tmpfs -o mode=755 tmpfs /run
  # Temporary files on a real filesystem: overlayfs refuses to make the
  # whiteout devices an image layer holds, and an mmap of a file read
  # through 9p is not coherent (the bolt cache of skopeo in
  # /var/lib/containers panics on one).
  mkdir -p /run/tmp /var/lib/containers
  chmod 1777 /run/tmp
  export TMPDIR=/run/tmp
  mount -t tmpfs -o mode=700 tmpfs /var/lib/containers
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
  # Every controller for the children of the root cgroup, where the command
  # runs: the lab creates its cgroups beneath its own one, here the root.
  for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
  done
  # Loop devices (the disk of chapter 5, the block I/O tests): without udev no
  # /dev/loop-control node exists whose opening would load the module.
  modprobe loop 2>/dev/null
  hostname v2-guest
  # The kernel starts init with 1024 descriptors; the suite runs with what
  # this machine gives a login (20000 here): many tests share one process.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null
  ip link set lo up 2>/dev/null
  bash "$0"
  echo "@@lab-guest-exit=$?@@"
  sync
  poweroff -f
' "$stage2"
