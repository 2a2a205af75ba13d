#!/usr/bin/env bash
# Measures, on this machine, what the book's introduction compares:
#   - how long a process takes from start to exit, plainly and in new
#     namespaces (the start of every container);
#   - how long a whole virtual machine takes to boot a kernel and run the
#     same command (scripts/v2-guest.sh: QEMU, a Debian kernel);
#   - how much memory each holds.
# Writes the table to book/src/measurements/vm-vs-container.txt, which the
# introduction includes; never edit that file by hand.
#
#   sudo bash scripts/measure-vm-vs-container.sh [--runs N] [--vm-runs N] [--no-vm]
#
# Uses hyperfine when it is installed (sudo apt-get install hyperfine), and
# a bash loop timed with `date +%s%N` otherwise. Takes about a minute, most
# of it booting the virtual machine.
set -euo pipefail

runs=200
vm_runs=3
with_vm=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --vm-runs) vm_runs=${2:?--vm-runs needs a number}; shift 2 ;;
    --no-vm) with_vm=no; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "measure: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "measure: needs root (new namespaces, the VM's file share); run it with sudo" >&2; exit 1; }
command -v unshare >/dev/null || { echo "measure: unshare is missing; install util-linux" >&2; exit 1; }

out=book/src/measurements/vm-vs-container.txt
guest=scripts/v2-guest.sh
namespaces=(unshare --fork --pid --mount-proc --uts --ipc --mount)

hyperfine=$(command -v hyperfine || true)
if [ -n "$hyperfine" ]; then
  timer="hyperfine $(hyperfine --version | awk '{print $2}')"
else
  timer="a bash loop timed with date +%s%N"
fi

# median_ms RUNS COMMAND ARGS...: the median wall time from start to exit,
# in milliseconds, after one warm-up run that is not counted.
median_ms() {
  local n=$1
  shift
  if [ -n "$hyperfine" ]; then
    local csv log
    csv=$(mktemp)
    log=$(mktemp)
    # --shell=none: time the command itself, not a shell starting it. Its
    # advice about noisy machines is kept quiet unless the run fails.
    if ! hyperfine --shell=none --warmup 1 --runs "$n" --style none --export-csv "$csv" \
      -- "$(printf '%q ' "$@")" >/dev/null 2>"$log"; then
      cat "$log" >&2
      rm -f "$csv" "$log"
      return 1
    fi
    awk -F, 'NR == 2 { printf "%.1f", $4 * 1000 }' "$csv"
    rm -f "$csv" "$log"
  else
    local samples=() i start end
    "$@" >/dev/null 2>&1
    for ((i = 0; i < n; i++)); do
      start=$(date +%s%N)
      "$@" >/dev/null 2>&1
      end=$(date +%s%N)
      samples+=($(((end - start) / 1000)))
    done
    printf '%s\n' "${samples[@]}" | sort -n | awk '
      { v[NR] = $1 }
      END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f", m / 1000 }'
  fi
}

# The resident memory (VmRSS, KiB) of a `sleep` started by "$@" (nothing,
# or an unshare command line). The sleep is killed by its PID afterwards;
# with SIGKILL, because as PID 1 of a new PID namespace it ignores SIGTERM.
sleep_rss_kib() {
  # (unshare complains when its child is killed; that is expected here.)
  "$@" sleep 600 2>/dev/null &
  local launcher=$! pid="" child i rss
  for ((i = 0; i < 500; i++)); do
    for child in $launcher $(cat "/proc/$launcher/task/$launcher/children" 2>/dev/null); do
      if [ "$(cat "/proc/$child/comm" 2>/dev/null)" = sleep ]; then pid=$child; fi
    done
    [ -n "$pid" ] && break
    sleep 0.01
  done
  [ -n "$pid" ] || { echo "measure: the sleep did not start" >&2; exit 1; }
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
  kill -KILL "$pid"
  wait "$launcher" 2>/dev/null || true
  echo "$rss"
}

# The peak resident memory (VmHWM, KiB) of the QEMU process while the guest
# boots and runs `true`, sampled every 0.1 s.
qemu_peak_kib() {
  bash "$guest" --timeout 600 -- true >/dev/null 2>&1 &
  local harness=$! peak=0 child hwm
  while kill -0 "$harness" 2>/dev/null; do
    for child in $(cat "/proc/$harness/task/$harness/children" 2>/dev/null); do
      case "$(cat "/proc/$child/comm" 2>/dev/null)" in
        qemu-system-*)
          hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$child/status" 2>/dev/null || true)
          if [ -n "$hwm" ] && [ "$hwm" -gt "$peak" ]; then peak=$hwm; fi
          ;;
      esac
    done
    sleep 0.1
  done
  wait "$harness" 2>/dev/null || true
  echo "$peak"
}

echo "measure: start to exit, $runs runs each (with $timer)" >&2
plain_ms=$(median_ms "$runs" true)
ns_ms=$(median_ms "$runs" "${namespaces[@]}" true)

echo "measure: memory of a sleeping process" >&2
plain_rss=$(sleep_rss_kib)
ns_rss=$(sleep_rss_kib "${namespaces[@]}")

vm_note=""
if [ "$with_vm" = no ]; then
  vm_note="not measured (--no-vm)"
elif [ ! -f "$guest" ]; then
  vm_note="not measured: $guest is missing"
else
  # One run first: it builds the guest's initramfs when needed, and tells
  # whether a guest can start here at all.
  echo "measure: checking that $guest boots a guest (up to a few minutes)" >&2
  if ! bash "$guest" --timeout 600 -- true >/dev/null 2>&1; then
    vm_note="not measured: $guest could not boot a guest here (try: sudo bash $guest -- true)"
  fi
fi

if [ -z "$vm_note" ]; then
  echo "measure: booting the virtual machine $vm_runs times" >&2
  vm_ms=$(median_ms "$vm_runs" bash "$guest" --timeout 600 -- true)
  echo "measure: the virtual machine's memory" >&2
  vm_peak=$(qemu_peak_kib)
  vm_mib=$(sed -n 's/.* -m \([0-9][0-9]*\).*/\1/p' "$guest" | head -n 1)
  vm_accel=$(sed -n 's/.*-accel \([a-z]*\).*/\1/p' "$guest" | head -n 1)
  vm_kernel=""
  for image in $(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | sort -V -r); do
    candidate=${image#/boot/vmlinuz-}
    if [ -d "/lib/modules/$candidate" ]; then vm_kernel=$candidate; break; fi
  done
  case "$vm_accel" in
    tcg) vm_how="QEMU with software emulation (TCG)" ;;
    kvm) vm_how="QEMU with KVM" ;;
    *) vm_how="QEMU" ;;
  esac
fi

row() { printf '  %-58s %s\n' "$1" "$2"; }
{
  echo "Measured by scripts/measure-vm-vs-container.sh on $(date -u +%Y-%m-%d):"
  echo "$(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r)."
  echo
  echo "Start to exit of true, median ($timer)"
  row "a plain process ($runs runs)" "$plain_ms ms"
  row "in new PID, mount, UTS and IPC namespaces ($runs runs)" "$ns_ms ms"
  if [ -z "$vm_note" ]; then
    row "in a virtual machine that boots its kernel first ($vm_runs runs)" \
      "$(awk -v ms="$vm_ms" 'BEGIN { printf "%.0f ms (%.1f s)", ms, ms / 1000 }')"
    row "  the virtual machine against the namespaces" \
      "$(awk -v a="$vm_ms" -v b="$ns_ms" 'BEGIN {
        r = a / b; p = 1; while (r >= 100) { r /= 10; p *= 10 }
        printf "about %d times as long", int(r + 0.5) * p }')"
  else
    row "in a virtual machine" "$vm_note"
  fi
  echo
  echo "Memory"
  row "a sleeping plain process, resident (VmRSS)" "$plain_rss KiB"
  row "a sleeping process in new namespaces, resident (VmRSS)" "$ns_rss KiB"
  if [ -z "$vm_note" ]; then
    row "the virtual machine: memory given to the guest (-m)" "$((vm_mib * 1024)) KiB ($vm_mib MiB)"
    row "the virtual machine: QEMU's peak resident memory (VmHWM)" "$vm_peak KiB"
  else
    row "the virtual machine" "$vm_note"
  fi
  if [ -z "$vm_note" ]; then
    echo
    echo "The virtual machine: $vm_how, Debian kernel $vm_kernel,"
    echo "started by scripts/v2-guest.sh; its time includes QEMU's start and power-off."
  fi
} >"$out"
cat "$out"
