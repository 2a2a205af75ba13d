#!/usr/bin/env bash
# Runs a command as root inside a guest kernel that has cgroup v2 only, the
# layout of every learner's Ubuntu 24.04 VM, while this machine (and CI) run
# a cgroup v1 hybrid layout. See scripts/v2-guest.md.
#
#   scripts/v2-guest.sh [--timeout SECONDS] -- COMMAND [ARGS...]
#
# The guest is a Debian kernel under QEMU (TCG: no KVM needed). It sees this
# machine's root filesystem read-only over 9p at the same paths, with a tmpfs
# overlay on top, so binaries built here run there unchanged and nothing it
# writes reaches this machine. Exit status: the command's; 124 when the guest
# did not report within the timeout; 125 when the guest could not start.
set -euo pipefail

timeout=1500
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "v2 guest: no command given (usage: $0 [--timeout S] -- COMMAND ARGS...)" >&2; exit 125; }

die() { echo "v2 guest: $*" >&2; exit 125; }

[ "$(uname -m)" = x86_64 ] || die "the guest harness supports amd64 hosts only (this is $(uname -m))"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing; run scripts/provision.sh --with-guest"
command -v busybox >/dev/null || die "busybox is missing; run scripts/provision.sh"

# The newest Debian kernel with its modules, unless LAB_GUEST_KERNEL says.
kver=${LAB_GUEST_KERNEL:-}
if [ -z "$kver" ]; then
  for image in $(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | sort -V -r); do
    candidate=${image#/boot/vmlinuz-}
    if [ -d "/lib/modules/$candidate" ]; then kver=$candidate; break; fi
  done
fi
[ -n "$kver" ] && [ -r "/boot/vmlinuz-$kver" ] || die "no Debian kernel found in /boot; run scripts/provision.sh --with-guest"

here=$(cd "$(dirname "$0")" && pwd)
work=$(cd "$here/.." && pwd)/target/v2-guest
mkdir -p "$work"

# The initramfs: busybox, the modules needed to reach the host's files, and
# an /init that stacks a tmpfs overlay on them and switches root.
initramfs=$work/initramfs-$kver.cpio.gz
if [ ! -s "$initramfs" ] || [ "$here/v2-guest-init.sh" -nt "$initramfs" ]; then
  tree=$(mktemp -d "$work/initramfs.XXXXXX")
  mkdir -p "$tree"/{bin,proc,sys,dev,lower,rw,newroot,modules}
  cp "$(command -v busybox)" "$tree/bin/busybox"
  cp "$here/v2-guest-init.sh" "$tree/init"
  chmod +x "$tree/init"
  # Modules in dependency order (modinfo names each one's dependencies).
  declare -A seen=()
  order=()
  add_module() {
    local name=$1 dep
    [ -n "${seen[$name]:-}" ] && return
    seen[$name]=1
    for dep in $(modinfo -k "$kver" -F depends "$name" 2>/dev/null | tr ',' ' '); do
      add_module "$dep"
    done
    local file
    file=$(modinfo -k "$kver" -F filename "$name" 2>/dev/null) || return 0
    case "$file" in
      (builtin*|"") return ;;
      (*.ko) cp "$file" "$tree/modules/$name.ko" ;;
      (*.ko.xz) xz -dc "$file" > "$tree/modules/$name.ko" ;;
      (*.ko.zst) zstd -qdc "$file" > "$tree/modules/$name.ko" ;;
      (*.ko.gz) gzip -dc "$file" > "$tree/modules/$name.ko" ;;
    esac
    order+=("$name")
  }
  for module in virtio_pci 9pnet_virtio 9p overlay; do add_module "$module"; done
  printf '%s\n' "${order[@]}" > "$tree/modules/order"
  (cd "$tree" && find . | cpio -o -H newc --quiet | gzip -1) > "$initramfs.tmp"
  mv "$initramfs.tmp" "$initramfs"
  rm -rf "$tree"
fi

# The second stage, run in the real root: the caller's directory, its PATH,
# the variables it named in LAB_GUEST_ENV, and the command.
stage2=$(mktemp "$work/stage2.XXXXXX.sh")
marker="@@lab-guest-exit="
{
  echo "#!/bin/bash"
  printf 'export PATH=%q\n' "/root/.cargo/bin:$PATH"
  echo "export HOME=/root"
  for name in ${LAB_GUEST_ENV:-}; do
    if [ -n "${!name+set}" ]; then printf 'export %s=%q\n' "$name" "${!name}"; fi
  done
  printf 'cd %q\n' "$PWD"
  printf '%q ' "$@"; echo
} > "$stage2"

log=$(mktemp "$work/console.XXXXXX.log")
cleanup() {
  if [ -n "${qemu_pid:-}" ] && kill -0 "$qemu_pid" 2>/dev/null; then kill "$qemu_pid" 2>/dev/null || true; wait "$qemu_pid" 2>/dev/null || true; fi
  rm -f "$stage2" "$log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# loglevel=5: the kernel's warnings reach the console, with the stack of
# a soft lockup (podman once spun in the kernel for minutes here).
qemu-system-x86_64 \
  -accel tcg -cpu max -smp 2 -m 3072 \
  -kernel "/boot/vmlinuz-$kver" -initrd "$initramfs" \
  -append "console=ttyS0 loglevel=5 panic=-1 cgroup_no_v1=all lab.stage2=$stage2" \
  -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
  -nic none -display none -serial "file:$log" -monitor none -no-reboot \
  </dev/null >/dev/null 2>&1 &
qemu_pid=$!

# Follow the console until the marker, the timeout, or qemu's end.
deadline=$(( $(date +%s) + timeout ))
shown=0
code=""
while :; do
  if [ -s "$log" ]; then
    lines=$(wc -l < "$log")
    if [ "$lines" -gt "$shown" ]; then
      sed -n "$((shown + 1)),${lines}p" "$log" | tr -d '\r' | grep -v "^$marker" || true
      shown=$lines
    fi
    if grep -q "^$marker" <(tr -d '\r' < "$log"); then
      code=$(tr -d '\r' < "$log" | sed -n "s/^$marker\([0-9]*\)@@.*/\1/p" | head -n1)
      break
    fi
  fi
  if ! kill -0 "$qemu_pid" 2>/dev/null; then break; fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "v2 guest: no result within ${timeout} s; stopping it" >&2
    exit 124
  fi
  sleep 0.2
done
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=""
[ -n "$code" ] || die "the guest ended without running the command (see the console output above)"
exit "$code"
