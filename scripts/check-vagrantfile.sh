#!/usr/bin/env bash
# Validates the Vagrantfile for both architectures without a provider or a
# box download (vagrant validate --ignore-provider).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v vagrant >/dev/null; then
  echo "check-vagrantfile: vagrant is not installed; run scripts/provision.sh --with-vagrant" >&2
  exit 1
fi
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_DISABLE_VBOXSYMLINKCREATE=1
# A throwaway home: validation must not touch the user's ~/.vagrant.d.
VAGRANT_HOME=$(mktemp -d)
export VAGRANT_HOME
trap 'rm -rf "$VAGRANT_HOME"' EXIT
for arch in amd64 arm64; do
  LAB_VAGRANT_ARCH=$arch vagrant validate --ignore-provider </dev/null
  echo "check-vagrantfile: $arch ok"
done
