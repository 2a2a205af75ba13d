#!/usr/bin/env bash
# Validates the Vagrantfile for both host architectures (LAB_VAGRANT_ARCH=amd64
# and arm64), with no hypervisor, box download, network or terminal; fine as
# root, from any directory.
#
#   bash scripts/check-vagrantfile.sh
#
# Two passes for each architecture:
#  1. `vagrant validate --ignore-provider`: the Vagrantfile loads and its
#     machine settings (box, synced folders, provisioners) are valid.
#  2. `vagrant validate` with each provider mocked as installed, the same mock
#     Vagrant's --ignore-provider uses: the provider blocks' settings are
#     checked too (pass 1 skips them), for virtualbox and, when the
#     vagrant-libvirt plugin is installed system-wide, libvirt.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'check-vagrantfile: %s\n' "$*"; }
if ! command -v vagrant >/dev/null; then
  say "vagrant is not installed; run: sudo bash scripts/provision.sh --with-vagrant" >&2
  exit 1
fi

# Offline and quiet: no version check, no VirtualBox symlink set-up, no colour,
# nothing from the caller's environment that changes which Vagrantfile or box.
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_DISABLE_VBOXSYMLINKCREATE=1 VAGRANT_NO_COLOR=1
unset VAGRANT_DEFAULT_PROVIDER VAGRANT_VAGRANTFILE VAGRANT_CWD LAB_VAGRANT_BOX LAB_VAGRANT_ARCH

# A throwaway VAGRANT_HOME: validating writes nothing to ~/.vagrant.d, and its
# Vagrantfile (loaded before the project's) holds the provider mock. Plugins
# installed with `vagrant plugin install` live in ~/.vagrant.d and are not
# seen; system-wide ones (Debian's and Ubuntu's vagrant-libvirt) are.
VAGRANT_HOME=$(mktemp -d /tmp/check-vagrantfile.XXXXXX)
export VAGRANT_HOME
log=$VAGRANT_HOME/validate.log
# Machine state goes there too: a mocked provider says "not created", and
# Vagrant would then forget the id of a real VM in the project's .vagrant/.
export VAGRANT_DOTFILE_PATH=$VAGRANT_HOME/dotfile
trap 'rm -rf "$VAGRANT_HOME"' EXIT
cat >"$VAGRANT_HOME/Vagrantfile" <<'RUBY'
# Every provider installed, usable and not created, without touching a
# hypervisor: what `vagrant validate --ignore-provider` does, but here the
# provider settings are still validated. Only for check-vagrantfile.sh.
if ENV["LAB_MOCK_PROVIDERS"] == "1"
  Vagrant.plugin("2").manager.providers.each do |_name, (provider_class, _options)|
    provider_class.class_eval do
      def initialize(machine); end
      def machine_id_changed; end
      def self.installed?; true; end
      def self.usable?(raise_error = false); true; end
      def state
        Vagrant::MachineState.new(Vagrant::MachineState::NOT_CREATED_ID, :not_created, :not_created)
      end
    end
  end
end
RUBY

providers=(virtualbox)
if vagrant plugin list </dev/null 2>/dev/null | grep -q '^vagrant-libvirt '; then
  providers+=(libvirt)
else
  say "libvirt settings: not checked, the vagrant-libvirt plugin is not installed (provision.sh --with-vagrant installs it)"
fi

failed=0
# validate WHAT NAME=VALUE... COMMAND...: one run, its output shown only if it fails.
validate() {
  local what=$1; shift
  if env "$@" </dev/null >"$log" 2>&1; then
    say "$what: ok"
  else
    cat "$log" >&2
    say "$what: failed (output above)" >&2
    failed=1
  fi
}
for arch in amd64 arm64; do
  validate "$arch, --ignore-provider" LAB_VAGRANT_ARCH="$arch" vagrant validate --ignore-provider
  for provider in "${providers[@]}"; do
    validate "$arch, $provider settings" LAB_VAGRANT_ARCH="$arch" LAB_MOCK_PROVIDERS=1 \
      VAGRANT_DEFAULT_PROVIDER="$provider" vagrant validate
  done
done
if [ "$failed" -ne 0 ]; then
  say "the Vagrantfile does not validate; see the output above" >&2
  exit 1
fi
say "the Vagrantfile is valid ($(vagrant --version </dev/null))"
