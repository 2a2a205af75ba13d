#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, lint, every test as root on
# this machine's kernel, the privileged tests again inside a pure cgroup v2
# guest kernel, the book, and the Vagrantfile.
#
#   sudo bash scripts/test.sh            # everything
#   sudo bash scripts/test.sh --no-guest # skip the cgroup v2 guest run
set -euo pipefail
cd "$(dirname "$0")/.."

guest=yes
for arg in "$@"; do
  case "$arg" in
    --no-guest) guest=no ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "test: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "test: the suite creates namespaces, mounts and cgroups and needs root; run: sudo bash scripts/test.sh" >&2
  exit 1
fi

section() { printf '\n==== %s ====\n' "$*"; }

section "set-up"
provision_flags=(--with-vagrant)
[ "$guest" = yes ] && provision_flags+=(--with-guest)
bash scripts/provision.sh "${provision_flags[@]}"
# cargo and mdbook live in the Rust user's ~/.cargo/bin: root's, or the
# sudo user's when a learner runs `sudo bash scripts/test.sh`.
rust_home=$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)
export PATH="$HOME/.cargo/bin:${rust_home:-$HOME}/.cargo/bin:$PATH"
# Snapshots are reviewed by people (cargo insta review), never written by CI.
export INSTA_UPDATE=no CI=true
export CARGO_TERM_COLOR=never

section "format and lint"
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings

section "tests on this machine ($(uname -r), cgroup layout: $(stat -fc %T /sys/fs/cgroup))"
cargo test --locked 2>&1 | tee target/host-tests.log

if [ "$guest" = yes ]; then
  section "tests inside a cgroup v2 guest kernel"
  # The same test binaries, built above, run unchanged in the guest: it sees
  # this machine's files read-only at the same paths.
  mapfile -t executables < <(cargo test --locked --no-run 2>&1 |
    sed -n 's/.*Executable .* (\(target\/debug\/deps\/[^)]*\)).*/\1/p')
  printf '%s\n' "${executables[@]}"
  # Under TCG the whole suite takes about 40 minutes (recovery's kills at
  # every start point alone about 10), longer than the guest's default.
  LAB_GUEST_ENV="INSTA_UPDATE CI CARGO_TERM_COLOR" \
    bash scripts/v2-guest.sh --timeout 3600 -- bash scripts/run-test-binaries.sh "${executables[@]}"
fi

section "the book"
mdbook build book

section "the Vagrantfile"
bash scripts/check-vagrantfile.sh

section "done"
echo "all checks passed"
