#!/usr/bin/env bash
# Measures, on this machine, what the book's introduction compares: how long
# a process in new namespaces takes from start to exit, how long a whole
# virtual machine takes to boot a kernel and run the same command, and how
# much memory each holds. Writes book/src/measurements/vm-vs-container.txt.
#
#   sudo bash scripts/measure-vm-vs-container.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "measure: needs root (namespaces, the VM's 9p share); run it with sudo" >&2; exit 1; }
out=book/src/measurements/vm-vs-container.txt
mkdir -p "$(dirname "$out")"

# Median wall time in milliseconds of running "$@" N times.
median_ms() {
  local n=$1; shift
  local samples=() i start end
  for ((i = 0; i < n; i++)); do
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s%N)
    samples+=($(( (end - start) / 1000 )))
  done
  printf '%s\n' "${samples[@]}" | sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.1f", m / 1000 }'
}

namespaces=(unshare --fork --pid --mount-proc --uts --ipc --mount true)
container_ms=$(median_ms 200 "${namespaces[@]}")
plain_ms=$(median_ms 200 true)

# A process in new namespaces, held alive: what it costs in memory.
unshare --fork --pid --mount-proc --uts --ipc --mount sleep 30 &
holder=$!
sleep 0.5
inner=$(cat "/proc/$holder/task/$holder/children" 2>/dev/null | awk '{print $1}')
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/${inner:-$holder}/status")
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true

vm_line="not measured: scripts/v2-guest.sh could not start a guest here"
if vm_ms=$(median_ms 3 bash scripts/v2-guest.sh --timeout 300 -- true) && bash scripts/v2-guest.sh --timeout 300 -- true >/dev/null 2>&1; then
  vm_line="${vm_ms} ms (median of 3; QEMU with software emulation (TCG), 3072 MiB reserved, Debian kernel $(ls /boot/vmlinuz-*-amd64 | sort -V | tail -n1 | sed 's|/boot/vmlinuz-||'))"
fi

{
  echo "measured on $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r), by scripts/measure-vm-vs-container.sh"
  echo
  echo "start to exit of /bin/true"
  echo "  as a plain process:                         ${plain_ms} ms (median of 200)"
  echo "  in new PID, mount, UTS and IPC namespaces:  ${container_ms} ms (median of 200)"
  echo "  in a virtual machine that boots a kernel:   ${vm_line}"
  echo
  echo "memory held"
  echo "  a sleeping process in new namespaces:       ${rss_kb} KiB resident"
  echo "  the virtual machine:                        3145728 KiB reserved for the guest, plus QEMU itself"
} > "$out"
cat "$out"
