#!/usr/bin/env bash
# The OCI runtime validation suite (../shared/runtime-tools/validate.sh)
# against lab-runc and Debian's runc, side by side, on the tests that
# tests/oci_validation.rs runs (all but the linux_cgroups_* ones with
# absolute cgroup paths). Writes the suite's own verdicts, one line per
# test and runtime, and its closing counts to
# book/src/measurements/oci-validation.md, which chapter 11's page includes.
# Both run in a cgroup namespace of their own (scripts/cgroup-ns.sh), so
# that every cgroup either runtime makes lies beneath ours.
#
#   sudo bash scripts/sandbox.sh NAME -- bash scripts/oci-validation.sh
#
# A record, not a test: tests/oci_validation.rs is the test.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "oci-validation: needs root" >&2; exit 1; }
validate=
for dir in ${LAB_RUNTIME_TOOLS:-} ../shared/runtime-tools /work/shared/runtime-tools; do
  [ -f "$dir/validate.sh" ] && { validate=$(cd "$dir" && pwd)/validate.sh; break; }
done
[ -n "$validate" ] || { echo "oci-validation: no ../shared/runtime-tools/validate.sh (set LAB_RUNTIME_TOOLS)" >&2; exit 1; }
out=${VALIDATION_OUT:-book/src/measurements/oci-validation.md}
mapfile -t tests < <(sed -n '/^pub const TESTS/,/^];/p' tests/oci_validation.rs | grep -o '"[a-z_]*"' | tr -d '"')
lab=$PWD/target/debug/lab-runc
[ -x "$lab" ] || { echo "oci-validation: build lab-runc first (cargo build --bin lab-runc)" >&2; exit 1; }
runc=$(command -v runc) || { echo "oci-validation: runc is missing (apt install runc)" >&2; exit 1; }
work=$(mktemp -d /tmp/oci-validation.XXXXXX)
trap 'rm -rf "$work"' EXIT
(cd "$work" && bash "$OLDPWD/scripts/cgroup-ns.sh" -- bash "$validate" "$lab" "${tests[@]}") > "$work/lab-runc.txt" 2>&1 || true
(cd "$work" && bash "$OLDPWD/scripts/cgroup-ns.sh" -- bash "$validate" "$runc" "${tests[@]}") > "$work/runc.txt" 2>&1 || true
python3 - "$work/lab-runc.txt" "$work/runc.txt" "$($runc --version | head -n1)" > "$out" <<'PY'
import re, sys
def verdicts(path):
    lines = open(path).read().splitlines()
    found = {}
    for line in lines:
        m = re.match(r"^([a-z_]+): (pass .*|FAIL .*)$", line)
        if m:
            found[m.group(1)] = m.group(2)
    closing = next((l for l in reversed(lines) if re.match(r"^\d+ passed, \d+ failed$", l)), "?")
    return found, closing
lab, lab_total = verdicts(sys.argv[1])
runc, runc_total = verdicts(sys.argv[2])
print(f"| test | lab-runc | {sys.argv[3]} |")
print("|---|---|---|")
for name in sorted(set(lab) | set(runc)):
    print(f"| {name} | {lab.get(name, '-')} | {runc.get(name, '-')} |")
print(f"| **all** | **{lab_total}** | **{runc_total}** |")
PY
cat "$out"
