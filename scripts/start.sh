#!/usr/bin/env bash
# First steps on a fresh machine: install what the lab needs, then run
# chapter 1. Safe to run again; the set-up is skipped when it is done.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
  bash scripts/provision.sh
else
  sudo bash scripts/provision.sh
fi
export PATH="$HOME/.cargo/bin:$PATH"
exec cargo run --quiet --bin ch01 -- "$@"
