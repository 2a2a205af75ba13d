#!/usr/bin/env bash
# Installs what the container lab needs on Debian or Ubuntu. Idempotent: a
# second run installs nothing and takes a second or two.
#
#   sudo bash scripts/provision.sh [--with-guest] [--with-vagrant] [--with-bench] [--all]
#
#   --with-guest    QEMU and a Debian kernel for the cgroup v2 test guest (amd64 only)
#   --with-vagrant  vagrant, to validate the Vagrantfile
#   --with-bench    crun, runc and hyperfine, for the start-up benchmark
#   --rust-for USER install Rust for USER when cargo is missing (default: the sudo user)
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

with_guest=no with_vagrant=no with_bench=no rust_user=${SUDO_USER:-$(id -un)}
while [ $# -gt 0 ]; do
  case "$1" in
    --with-guest) with_guest=yes ;;
    --with-vagrant) with_vagrant=yes ;;
    --with-bench) with_bench=yes ;;
    --all) with_guest=yes with_vagrant=yes with_bench=yes ;;
    --rust-for) rust_user=${2:?--rust-for needs a user name}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "provision: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    exec sudo bash "$0" "$@" --rust-for "$(id -un)"
  fi
  echo "provision: needs root to install packages; run it as root" >&2
  exit 1
fi

say() { printf 'provision: %s\n' "$*"; }
fail() { printf 'provision: %s\n' "$*" >&2; exit 1; }

if ! command -v apt-get >/dev/null; then
  fail "this script knows Debian and Ubuntu (apt-get); install busybox-static, iproute2, nftables, uidmap and Rust by hand"
fi

export DEBIAN_FRONTEND=noninteractive
arch=$(dpkg --print-architecture)

missing_packages() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || printf '%s\n' "$pkg"
  done
}

apt_updated=no
apt_install() {
  local missing
  mapfile -t missing < <(missing_packages "$@")
  if [ "${#missing[@]}" -eq 0 ]; then
    say "packages present: $*"
    return
  fi
  say "installing ${missing[*]}"
  # Refresh the package lists once, when they are old or a package is unknown.
  if [ "$apt_updated" = no ]; then
    local lists_age=999999
    if [ -d /var/lib/apt/lists ] && ls /var/lib/apt/lists/*Packages >/dev/null 2>&1; then
      lists_age=$(( $(date +%s) - $(stat -c %Y /var/lib/apt/lists/partial 2>/dev/null || echo 0) ))
    fi
    if [ "$lists_age" -gt 86400 ] || ! apt-cache show "${missing[0]}" >/dev/null 2>&1; then
      apt-get update -qq || fail "apt-get update failed; check the network and the apt sources"
    fi
    apt_updated=yes
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install failed for ${missing[*]}; see the output above"
}

# What every chapter uses.
apt_install busybox-static procps iproute2 nftables iptables uidmap util-linux \
  hostname kmod psmisc ca-certificates gcc libc6-dev make pkg-config curl

if [ "$with_guest" = yes ]; then
  if [ "$arch" = amd64 ]; then
    apt_install qemu-system-x86 linux-image-amd64 cpio xz-utils zstd
  else
    say "skipping the cgroup v2 guest: its harness supports amd64 hosts only (this is $arch)"
  fi
fi
if [ "$with_vagrant" = yes ]; then apt_install vagrant; fi
if [ "$with_bench" = yes ]; then apt_install crun runc hyperfine; fi

# Rust, for the user who will run the chapters.
user_home=$(getent passwd "$rust_user" | cut -d: -f6)
cargo_bin=""
for candidate in "$(command -v cargo 2>/dev/null || true)" "$user_home/.cargo/bin/cargo" /root/.cargo/bin/cargo; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then cargo_bin=$candidate; break; fi
done
if [ -n "$cargo_bin" ]; then
  say "rust: present ($("$cargo_bin" --version))"
else
  say "rust: installing the stable toolchain with rustup for $rust_user"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs -o /tmp/rustup-init.sh \
    || fail "could not download rustup; install Rust from https://rustup.rs by hand"
  runuser -u "$rust_user" -- sh /tmp/rustup-init.sh -y --profile minimal --component clippy,rustfmt >/dev/null \
    || fail "rustup failed; see the output above"
  rm -f /tmp/rustup-init.sh
  cargo_bin="$user_home/.cargo/bin/cargo"
fi

# mdBook, for the book (built from crates.io when missing).
cargo_dir=$(dirname "$cargo_bin")
if command -v mdbook >/dev/null || [ -x "$cargo_dir/mdbook" ]; then
  say "mdbook: present"
else
  say "mdbook: installing with cargo (about two minutes)"
  owner=$(stat -c %U "$cargo_dir")
  runuser -u "$owner" -- "$cargo_bin" install mdbook --locked --quiet \
    || fail "cargo install mdbook failed; see the output above"
fi

# Kernel modules the later chapters use; built in on some kernels.
for module in overlay veth bridge nf_tables; do
  modprobe -q "$module" 2>/dev/null || true
done

# User namespaces (chapter 7): say so when the kernel or AppArmor restricts them.
if [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 1)" = 0 ]; then
  say "warning: user.max_user_namespaces is 0; chapter 7 needs user namespaces (sysctl -w user.max_user_namespaces=15000)"
fi
if [ "$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo 1)" = 0 ]; then
  say "warning: kernel.unprivileged_userns_clone is 0; the rootless part of chapter 7 needs it set to 1"
fi
if [ "$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns 2>/dev/null || echo 0)" = 1 ]; then
  say "note: AppArmor restricts unprivileged user namespaces here (Ubuntu 24.04); chapter 7's rootless part explains what that means"
fi
say "done"
