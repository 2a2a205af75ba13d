#!/usr/bin/env bash
# Installs what the container lab needs on Debian or Ubuntu (amd64, arm64).
# Idempotent: a second run installs nothing and takes about a second.
#
#   sudo bash scripts/provision.sh [OPTIONS]
#
#   --with-guest     QEMU and a Debian kernel for the cgroup v2 test guest
#                    (scripts/v2-guest.sh; Debian on amd64 only)
#   --with-vagrant   vagrant and vagrant-libvirt, for scripts/check-vagrantfile.sh
#   --with-bench     crun, runc and hyperfine, for scripts/bench.sh
#   --all            all three
#   --rust-for USER  whose Rust to check, and install with rustup when it is
#                    missing (default: the user who ran sudo, else root)
#   -h, --help       this text
#
# Always: the packages every chapter uses, Rust (rustup's stable toolchain,
# only when cargo is missing) and mdBook (cargo install, only when missing).
# Run without root, it re-runs itself with sudo. Works without a terminal.
set -euo pipefail

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

say() { printf 'provision: %s\n' "$*"; }
fail() { printf 'provision: %s\n' "$*" >&2; exit 1; }

with_guest=no with_vagrant=no with_bench=no rust_user=""
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --with-guest) with_guest=yes ;;
    --with-vagrant) with_vagrant=yes ;;
    --with-bench) with_bench=yes ;;
    --all) with_guest=yes with_vagrant=yes with_bench=yes ;;
    --rust-for)
      if [ $# -lt 2 ] || [ -z "$2" ]; then fail "--rust-for needs a user name"; fi
      rust_user=$2; shift ;;
    --rust-for=*) rust_user=${1#--rust-for=} ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown option $1 (try --help)" ;;
  esac
  shift
done

# Root is needed for apt; without it, ask sudo (Rust still goes to this user).
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null \
    || fail "needs root to install packages, and sudo is missing; run it as root: su -c 'bash $0'"
  # Without a terminal sudo can only work when it asks for no password.
  if ! sudo -n true 2>/dev/null && ! (: </dev/tty) 2>/dev/null; then
    fail "needs root, and sudo cannot ask for a password without a terminal; run: sudo bash $0 ${args[*]}"
  fi
  say "not root: re-running with sudo"
  [ -n "$rust_user" ] || args+=(--rust-for "$(id -un)")
  exec sudo bash "$(readlink -f "$0")" "${args[@]}"
fi

if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
  fail "this script knows Debian and Ubuntu (apt-get) only; install busybox-static, iproute2, nftables, uidmap, gcc and Rust by hand"
fi

# Rust and mdBook go to the user who will run `cargo run`: the sudo user, or root.
rust_user=${rust_user:-${SUDO_USER:-root}}
user_home=$(getent passwd "$rust_user" | cut -d: -f6) || true
if [ -z "$user_home" ] || [ ! -d "$user_home" ]; then
  fail "no user $rust_user with a home directory (see --rust-for)"
fi

export DEBIAN_FRONTEND=noninteractive
# Ubuntu's needrestart would otherwise ask (or list services) after installs.
export NEEDRESTART_SUSPEND=1 NEEDRESTART_MODE=l
arch=$(dpkg --print-architecture)
distro=$(sed -n 's/^ID=//p' /etc/os-release 2>/dev/null | tr -d '"')
distro=${distro:-unknown}

# Output of the long steps goes to a log, shown only when a step fails.
log=$(mktemp /tmp/provision.XXXXXX.log)
trap 'rm -f "$log"' EXIT
show_log() { tail -n 40 "$log" >&2; }

# Waits up to 10 minutes for the dpkg lock (a fresh VM's unattended-upgrades
# or cloud-init may hold it on first boot) instead of failing at once.
apt_opts=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

missing_packages() {
  # One dpkg-query for all: "hold ok installed" counts, "config-files" does not.
  local installed
  installed=$(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null | awk '/ ok installed$/ { print $1 }' || true)
  local pkg
  for pkg in "$@"; do
    grep -qxF "$pkg" <<<"$installed" || printf '%s\n' "$pkg"
  done
}

apt_updated=no
apt_update() {
  say "apt-get update ($1)"
  apt-get "${apt_opts[@]}" update -qq >"$log" 2>&1 || { show_log; fail "apt-get update failed; check the network and the apt sources"; }
  apt_updated=yes
}

lists_are_old() {
  # The newest of the lists' Release files and partial/ (touched by every
  # update); no lists at all counts as old.
  local newest=0 file stamp
  for file in /var/lib/apt/lists/*Release /var/lib/apt/lists/partial; do
    [ -e "$file" ] || continue
    stamp=$(stat -c %Y "$file")
    [ "$stamp" -gt "$newest" ] && newest=$stamp
  done
  [ $(( $(date +%s) - newest )) -gt 86400 ]
}

# apt_install WHAT PACKAGE...: installs the missing ones, if any.
apt_install() {
  local what=$1; shift
  local missing pkg
  mapfile -t missing < <(missing_packages "$@")
  if [ "${#missing[@]}" -eq 0 ]; then
    say "$what: present"
    return
  fi
  # Refresh the lists (once per run) when they are old or lack a package.
  if [ "$apt_updated" = no ]; then
    if lists_are_old; then
      apt_update "package lists older than a day"
    else
      for pkg in "${missing[@]}"; do
        if ! apt-cache show --no-all-versions "$pkg" >/dev/null 2>&1; then
          apt_update "$pkg not in the package lists"
          break
        fi
      done
    fi
  fi
  for pkg in "${missing[@]}"; do
    apt-cache show --no-all-versions "$pkg" >/dev/null 2>&1 \
      || fail "no package $pkg in the apt sources (on Ubuntu, is the universe component enabled?)"
  done
  say "$what: installing ${missing[*]}"
  if ! apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    # Lists a few hours old can name files the mirror has dropped: refresh, retry.
    if [ "$apt_updated" = no ]; then
      apt_update "retrying the install with fresh lists"
      apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1 \
        || { show_log; fail "apt-get install failed for ${missing[*]}; see the output above"; }
    else
      show_log
      fail "apt-get install failed for ${missing[*]}; see the output above"
    fi
  fi
}

# What every chapter uses; gcc and friends link Rust crates (build-essential).
apt_install "packages" busybox-static procps iproute2 nftables iptables uidmap \
  util-linux hostname kmod psmisc ca-certificates build-essential pkg-config curl
# The image tests' real peers: a registry, skopeo and umoci, htpasswd.
apt_install "registry peers" docker-registry skopeo umoci apache2-utils
# The tests start their own registries on 127.0.0.1; Debian's unit would
# serve one on :5000 to the network.
if command -v systemctl >/dev/null && systemctl is-enabled --quiet docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
  say "registry peers: disabled the docker-registry service (the tests run their own)"
fi

if [ "$with_guest" = yes ]; then
  if [ "$arch" != amd64 ]; then
    say "guest: skipped, the cgroup v2 guest harness supports amd64 hosts only (this is $arch)"
  elif [ "$distro" != debian ]; then
    # The harness boots Debian's linux-image-amd64, which Ubuntu does not
    # package; an Ubuntu 24.04 machine is cgroup v2 already.
    say "guest: skipped, the cgroup v2 guest harness boots a Debian kernel and this is $distro"
  else
    apt_install "guest" qemu-system-x86 linux-image-amd64 cpio xz-utils zstd
  fi
fi
# vagrant-libvirt lets check-vagrantfile.sh validate the libvirt settings too.
if [ "$with_vagrant" = yes ]; then apt_install "vagrant" vagrant vagrant-libvirt; fi
if [ "$with_bench" = yes ]; then apt_install "bench" crun runc hyperfine; fi
# The OCI runtime's real peers (tests/podman.rs, tests/oci_validation.rs); Go 1.19 builds the OCI suite.
apt_install "oci peers" podman conmon crun runc; [ "$distro" != debian ] || apt_install "oci suite" golang-1.19-go

# Rust, for the user who will run `cargo run` (resolved above).

# The Rust user's cargo home: root keeps a CARGO_HOME set in the environment.
if [ "$rust_user" = root ]; then cargo_home=${CARGO_HOME:-$user_home/.cargo}; else cargo_home=$user_home/.cargo; fi

# as_user CMD...: runs CMD as the Rust user, in their home, with their cargo first.
as_user() {
  local path="$cargo_home/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  if [ "$rust_user" = root ]; then
    (cd "$user_home" && env HOME="$user_home" PATH="$path" "$@")
  else
    # Root's CARGO_HOME/RUSTUP_HOME, if any, are not the user's.
    (cd "$user_home" && runuser -u "$rust_user" -- \
      env -u CARGO_HOME -u RUSTUP_HOME HOME="$user_home" USER="$rust_user" LOGNAME="$rust_user" PATH="$path" "$@")
  fi
}

# Where the user's cargo may be: their cargo home (~/.cargo/bin; for root also
# /root/.cargo/bin), and PATH (a system-wide cargo; under sudo PATH is root's
# secure_path, not the user's).
cargo_bin=""
for candidate in "$cargo_home/bin/cargo" "$user_home/.cargo/bin/cargo" /root/.cargo/bin/cargo \
    "$(command -v cargo 2>/dev/null || true)"; do
  if [ -z "$candidate" ] || [ ! -x "$candidate" ]; then continue; fi
  # Another user's cargo under /root is no use to a non-root user.
  if [ "$rust_user" != root ] && [[ $candidate == /root/* ]]; then continue; fi
  cargo_bin=$candidate
  break
done

if [ -n "$cargo_bin" ] && cargo_version=$(as_user "$cargo_bin" --version 2>/dev/null); then
  say "rust: present (${cargo_version%% (*})"
else
  say "rust: installing the stable toolchain with rustup for $rust_user"
  rustup_dir=$(mktemp -d /tmp/rustup-init.XXXXXX)
  chmod 755 "$rustup_dir"
  curl --proto '=https' --tlsv1.2 -sSf --retry 3 https://sh.rustup.rs -o "$rustup_dir/rustup-init.sh" 2>"$log" \
    || { show_log; rm -rf "$rustup_dir"; fail "could not download rustup from https://sh.rustup.rs; install Rust from https://rustup.rs by hand"; }
  chmod 644 "$rustup_dir/rustup-init.sh"
  # rustup-init adds ~/.cargo/bin to the user's PATH in ~/.profile and ~/.bashrc.
  if ! as_user sh "$rustup_dir/rustup-init.sh" -y --default-toolchain stable \
      --profile minimal --component clippy,rustfmt >"$log" 2>&1; then
    show_log; rm -rf "$rustup_dir"; fail "rustup could not install rust for $rust_user; see the output above"
  fi
  rm -rf "$rustup_dir"
  cargo_bin="$cargo_home/bin/cargo"
  say "rust: installed ($(as_user "$cargo_bin" --version | sed 's/ (.*//')); new shells find it, this one after: . ~/.cargo/env"
fi

# mdBook, for the book: built from crates.io when missing.
mdbook_bin=""
for candidate in "$(command -v mdbook 2>/dev/null || true)" "$cargo_home/bin/mdbook" "$(dirname "$cargo_bin")/mdbook"; do
  if [ -z "$candidate" ] || [ ! -x "$candidate" ]; then continue; fi
  if [ "$rust_user" != root ] && [[ $candidate == /root/* ]]; then continue; fi
  mdbook_bin=$candidate
  break
done
if [ -n "$mdbook_bin" ]; then
  say "mdbook: present ($("$mdbook_bin" --version 2>/dev/null || echo "$mdbook_bin"))"
else
  say "mdbook: installing with cargo install mdbook --locked for $rust_user (a few minutes)"
  as_user "$cargo_bin" install mdbook --locked --quiet >"$log" 2>&1 \
    || { show_log; fail "cargo install mdbook failed; see the output above"; }
  say "mdbook: installed ($(as_user mdbook --version 2>/dev/null || echo "in $cargo_home/bin"))"
fi

# Kernel modules the chapters use (overlay: ch04, veth and bridge: ch06).
# Built-in or missing ones are fine here: the chapters report what they lack.
loaded=() unavailable=()
for module in overlay veth bridge; do
  if [ -d "/sys/module/$module" ] || modprobe -q "$module" 2>/dev/null; then
    loaded+=("$module")
  else
    unavailable+=("$module")
  fi
done
if [ "${#unavailable[@]}" -eq 0 ]; then
  say "kernel modules: ${loaded[*]} ready"
else
  say "kernel modules: ${loaded[*]:-none} ready; no module ${unavailable[*]} to load (fine when built in; the chapters say when something is missing)"
fi

# User namespaces (chapter 7): warn, never change sysctls.
if [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 1)" = 0 ]; then
  say "warning: user.max_user_namespaces is 0, and chapter 7 needs user namespaces (as root: sysctl -w user.max_user_namespaces=15000)"
fi
if [ "$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo 1)" = 0 ]; then
  say "warning: kernel.unprivileged_userns_clone is 0, so chapter 7's rootless step will be refused (as root: sysctl -w kernel.unprivileged_userns_clone=1)"
fi
if [ "$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns 2>/dev/null || echo 0)" = 1 ]; then
  say "note: AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1, Ubuntu's default); chapter 7's rootless step shows the refusals, the rest of the lab is unaffected"
fi
say "done"
