#!/usr/bin/env bash
# A benchmark, not a test: the same ten-step Dockerfile built by
# `mini-docker build` (RUN steps in containers of the lab's runtime) and by
# Debian's buildah (vfs storage, chroot isolation, --layers for its cache),
# over the same busybox base, cold and fully cached, in one run.
#
#   sudo bash scripts/bench-build.sh [RUNS]      # RUNS of each, default 5
#
# "Cold" is a fresh copy of a state that holds only the base image;
# "cached" rebuilds with nothing changed. Writes the medians and the
# ratios to book/src/measurements/build-vs-buildah.txt, which chapter 10's
# page includes. Everything else lives in a temporary directory that is
# removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
out=book/src/measurements/build-vs-buildah.txt
[ "$(id -u)" -eq 0 ] || { echo "bench-build: needs root (a build step is a container; buildah as root)" >&2; exit 2; }
command -v buildah >/dev/null || { echo "bench-build: buildah is missing: sudo apt-get install buildah" >&2; exit 2; }
busybox=$(command -v busybox) || { echo "bench-build: busybox is missing: sudo apt-get install busybox-static" >&2; exit 2; }

cargo build --release --locked --bin mini-docker >&2
md=$PWD/target/release/mini-docker

work=$(mktemp -d /var/tmp/bench-build.XXXXXX)
cleanup() {
  # buildah's vfs layers may hold read-only directories.
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The base: a busybox tree, the same bytes on both sides.
tree=$work/tree
mkdir -p "$tree/bin" "$tree/etc" "$tree/tmp"
cp "$busybox" "$tree/bin/busybox"
for applet in sh ls cp rm mkdir cat echo true; do ln -s busybox "$tree/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$tree/etc/passwd"
printf 'root:x:0:\n' >"$tree/etc/group"
chmod 1777 "$tree/tmp"
tar -C "$tree" -cf "$work/base.tar" .

ctx=$work/context
mkdir -p "$ctx/src"
printf 'left-pad 1.0\n' >"$ctx/deps.txt"
for i in 1 2 3 4 5; do printf 'file %s\n' "$i" >"$ctx/src/f$i.txt"; done
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
ARG BASE
FROM $BASE
ENV APP=/app
WORKDIR /app
COPY deps.txt ./
RUN cp deps.txt installed && echo done >> installed
COPY src/ ./src/
RUN ls src > listing
LABEL bench=yes
EXPOSE 8080
CMD ["sh"]
DOCKERFILE

# Pristine states holding only the base image. mini-docker's: the tarball
# imported, then copied into its OCI store by a build that names it.
lab() { CONTAINER_LAB_ROOT=$1 "$md" "${@:2}"; }
lab "$work/lab-pristine" import "$work/base.tar" lab/base >/dev/null
mkdir -p "$work/warm"
printf 'FROM lab/base\n' >"$work/warm/Dockerfile"
lab "$work/lab-pristine" build -q "$work/warm" >/dev/null
b() { buildah --root "$1/root" --runroot "$1/run" --storage-driver vfs "${@:2}"; }
mkdir -p "$work/buildah-pristine"
ctr=$(b "$work/buildah-pristine" from scratch)
b "$work/buildah-pristine" add "$ctr" "$work/base.tar" / >/dev/null
b "$work/buildah-pristine" config --env PATH=/bin "$ctr"
b "$work/buildah-pristine" commit -q "$ctr" localhost/lab-base >/dev/null
b "$work/buildah-pristine" rm "$ctr" >/dev/null

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
lab_build() { lab "$1" build -q -t lab/bench --build-arg BASE=lab/base "$ctx" >/dev/null; }
buildah_build() {
  b "$1" bud -q --isolation chroot --layers -t bench --build-arg BASE=localhost/lab-base "$ctx" >/dev/null
}

declare -A times
for tool in lab buildah; do
  cold=() cached=()
  for _ in $(seq "$runs"); do
    rm -rf "$work/run"
    cp -a "$work/$tool-pristine" "$work/run"
    store=$work/run
    start=$(now); "${tool}_build" "$store"; end=$(now)
    cold+=($(( (end - start) / 1000 )))
    start=$(now); "${tool}_build" "$store"; end=$(now)
    cached+=($(( (end - start) / 1000 )))
    chmod -R u+w "$work/run" 2>/dev/null || true
  done
  times[$tool-cold]=$(printf '%s\n' "${cold[@]}" | median)
  times[$tool-cached]=$(printf '%s\n' "${cached[@]}" | median)
done

ms() { awk -v us="$1" 'BEGIN {printf "%.1f ms", us / 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
mkdir -p "$(dirname "$out")"
{
  printf 'ten-step Dockerfile (two RUN steps), median of %s runs each\n' "$runs"
  printf '%-22s %12s %12s\n' "" "cold" "cached"
  printf '%-22s %12s %12s\n' "mini-docker build" "$(ms "${times[lab-cold]}")" "$(ms "${times[lab-cached]}")"
  printf '%-22s %12s %12s\n' "buildah bud --layers" "$(ms "${times[buildah-cold]}")" "$(ms "${times[buildah-cached]}")"
  printf 'mini-docker/buildah:   cold %s, cached %s\n' \
    "$(ratio "${times[lab-cold]}" "${times[buildah-cold]}")" \
    "$(ratio "${times[lab-cached]}" "${times[buildah-cached]}")"
  printf 'measured %s on %s cores, kernel %s, %s\n' "$(date -u +%Y-%m-%d)" "$(nproc)" \
    "$(uname -r | cut -d- -f1)" "$(buildah --version | cut -d' ' -f1-3)"
} | tee "$out"
