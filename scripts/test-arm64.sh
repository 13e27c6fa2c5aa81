#!/usr/bin/env bash
# The device side on aarch64, for real: a Debian arm64 userland run under qemu-user, with only
# `jetfleet[agent]` installed in it (no torch, no controller), serving a controller that runs on this
# machine. Why: Jetsons are aarch64 and install the agent's dependencies as aarch64 wheels (ONNX Runtime,
# grpcio, numpy, cryptography, ...); the rest of the suite only ever runs them on x86-64.
#   1. Debian's debootstrap and qemu-user-static (apt-get if missing), qemu-aarch64 registered in binfmt_misc;
#   2. a bookworm arm64 minbase userland with python3, cached as build/arm64/bookworm-arm64-KEY.tar.gz
#      (KEY: the debootstrap arguments), unpacked into a fresh build/arm64/root each run;
#   3. /proc, /sys, /dev mounted in it (always unmounted on exit, by the trap), the host's CA bundle copied in;
#   4. the jetfleet wheel built from the working tree on the host; the agent's aarch64 wheels resolved from
#      the package index for that Python and platform (host pip, cached in build/arm64/wheelhouse); inside
#      the chroot, a virtualenv at /opt/jetfleet and `pip install '<wheel>[agent]'` from those wheels;
#   5. scripts/device_e2e.py: controller side from .venv, the agent inside the chroot over loopback; train
#      basic_cnn on digits, deploy INT8, classify the digits test set, compare with the registry.
# Usage: scripts/test-arm64.sh   (as root, else it skips unless JETFLEET_REQUIRE_ARM64=1; needs .venv)
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian), KEEP_ARM64_ROOT=1 keeps build/arm64/root.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd -P)
HOST_PY=$REPO/.venv/bin/python
B=$REPO/build/arm64
CHROOT=$B/root
SUITE=bookworm
INCLUDE=python3,python3-venv,ca-certificates
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEY=$(printf '%s\n' "$SUITE" minbase "$INCLUDE" "$MIRROR" | sha256sum | cut -c1-12)
CACHE=$B/$SUITE-arm64-$KEY.tar.gz
AGENT_VENV=/opt/jetfleet
# What the agent and pip inside see: a clean environment, like a systemd service on the device.
IN_ENV=(/usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
    OMP_NUM_THREADS=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt)

started=$SECONDS
phase_name="" phase_start=$SECONDS
TIMINGS=()
phase() {
    end_phase
    phase_name=$1 phase_start=$SECONDS
    echo "== [$((SECONDS - started)) s] $phase_name"
}
end_phase() {
    if [ -n "$phase_name" ]; then TIMINGS+=("$(printf '%5d s  %s' $((SECONDS - phase_start)) "$phase_name")"); fi
    phase_name=""
}
die() { echo "error: $*" >&2; exit 1; }
# Run a long step in the background and wait for it: a SIGTERM or Ctrl-C then reaches our trap at once
# (bash defers traps while a foreground command runs), and the trap passes SIGTERM on to it.
CHILD=""
waited() {
    "$@" &
    CHILD=$!
    local status=0
    wait "$CHILD" || status=$?
    CHILD=""
    return "$status"
}

# ---------------------------------------------------------------------------- clean-up, always
# Processes whose root is DIR: only what we started in it (the driver stops its own; this catches leftovers).
kill_inside() {
    local dir=$1 pid root
    for pid in /proc/[0-9]*; do
        root=$(readlink "$pid/root" 2>/dev/null) || continue
        if [ "$root" = "$dir" ]; then kill -KILL "${pid#/proc/}" 2>/dev/null || true; fi
    done
}
# Mount points at or under DIR (a literal prefix, not a pattern).
mounts_under() { findmnt -rn -o TARGET | awk -v d="$1" '$0 == d || index($0, d "/") == 1'; }
# Every mount point at or under DIR, deepest first; lazily if a mount is still busy.
unmount_under() {
    local dir=$1 m
    [ -n "$dir" ] || return 0
    mounts_under "$dir" | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" || echo "warning: cannot unmount $m" >&2
    done
}
# rm -rf of a chroot only once nothing is mounted in it (a bound /dev must never be deleted through).
remove_tree() {
    local dir=$1
    [ -e "$dir" ] || return 0
    kill_inside "$dir"
    unmount_under "$dir"
    if [ -n "$(mounts_under "$dir")" ]; then die "$dir still has mounts; not removing it"; fi
    rm -rf --one-file-system "$dir"
}
cleanup() {
    local status=$?
    set +e
    end_phase
    if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
        kill -TERM "$CHILD" # the driver stops the controller and the agent it started, then exits
        wait "$CHILD"
    fi
    for dir in "$CHROOT" "$B/bootstrap"; do
        kill_inside "$dir"
        unmount_under "$dir"
    done
    if [ "$status" = 0 ] && [ -z "${KEEP_ARM64_ROOT:-}" ]; then remove_tree "$CHROOT"; fi
    echo "== phases"
    printf '  %s\n' "${TIMINGS[@]}"
    printf '  %5d s  total\n' $((SECONDS - started))
    if [ "$status" = 0 ]; then echo "arm64 agent e2e: PASS"; else echo "arm64 agent e2e: FAIL (exit status $status)"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$(id -u)" != 0 ]; then
    # `make test` runs this for everyone; without root it says why it skips, CI (JETFLEET_REQUIRE_ARM64=1) fails.
    [ -n "${JETFLEET_REQUIRE_ARM64:-}" ] && die "needs root (debootstrap, chroot, mount)"
    echo "arm64 agent e2e: SKIPPED (needs root for debootstrap, chroot and mount; CI runs it)"
    trap - EXIT
    exit 0
fi
[ -x "$HOST_PY" ] || die "no $HOST_PY: run \`make install\` first"
case $REPO in *[[:space:]]*) die "the checkout's path has white space: $REPO" ;; esac
mkdir -p "$B"
# One run at a time in this checkout: a second one waits instead of sharing build/arm64/root.
exec 9>"$B/lock"
flock -n 9 || { echo "another scripts/test-arm64.sh holds $B/lock; waiting"; trap - EXIT; flock 9; trap cleanup EXIT; }
rm -rf "$B/e2e" # a failed run's controller side, kept for inspection until the next run

# ---------------------------------------------------------------------------- 1. tools and binfmt_misc
phase "tools: debootstrap, qemu-user-static, binfmt_misc"
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
command -v update-binfmts >/dev/null || missing+=(binfmt-support)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
BINFMT=/proc/sys/fs/binfmt_misc
[ -e $BINFMT/register ] || mount -t binfmt_misc binfmt_misc $BINFMT
[ "$(cat $BINFMT/status)" = enabled ] || echo 1 >$BINFMT/status
if ! head -n1 $BINFMT/qemu-aarch64 2>/dev/null | grep -qx enabled; then
    update-binfmts --enable qemu-aarch64 || update-binfmts --import qemu-aarch64
fi
head -n1 $BINFMT/qemu-aarch64 | grep -qx enabled || die "qemu-aarch64 is not registered in $BINFMT"
INTERP=$(awk '/^interpreter/ {print $2}' $BINFMT/qemu-aarch64)
# Without the F flag the kernel opens the interpreter inside the chroot: it must be there.
grep -q '^flags:.*F' $BINFMT/qemu-aarch64 && INTERP=""
echo "qemu: $(/usr/bin/qemu-aarch64-static --version | head -n1)"

# ---------------------------------------------------------------------------- 2. the arm64 userland
if [ ! -s "$CACHE" ]; then
    phase "debootstrap $SUITE arm64 (cached afterwards as $(basename "$CACHE"))"
    remove_tree "$B/bootstrap"
    waited debootstrap --arch arm64 --variant=minbase --include="$INCLUDE" "$SUITE" "$B/bootstrap" "$MIRROR" \
        >"$B/debootstrap.log" 2>&1 || { tail -n 30 "$B/debootstrap.log" >&2; die "debootstrap failed"; }
    unmount_under "$B/bootstrap" # debootstrap leaves its /proc mounted
    rm -rf "$B/bootstrap"/var/cache/apt/archives/*.deb "$B/bootstrap"/var/lib/apt/lists/*
    tar -C "$B/bootstrap" --numeric-owner -I 'gzip -1' -cf "$CACHE.tmp" . # -1: 3 s instead of 10, 8% larger
    mv "$CACHE.tmp" "$CACHE"
    rm -f "$B"/"$SUITE"-arm64-*.tar.gz.tmp
    find "$B" -maxdepth 1 -name "$SUITE-arm64-*.tar.gz" ! -name "$(basename "$CACHE")" -delete # stale keys
    remove_tree "$B/bootstrap"
fi
phase "unpack a fresh root from $(basename "$CACHE")"
remove_tree "$CHROOT"
mkdir -p "$CHROOT"
tar -C "$CHROOT" --numeric-owner -xzf "$CACHE"

# ---------------------------------------------------------------------------- 3. mounts and certificates
phase "mount /proc /sys /dev; CA bundle, resolv.conf"
# The host's bundle (it holds the CA this network's TLS is checked against) at Debian's usual path, so
# pip, requests' REQUESTS_CA_BUNDLE and OpenSSL's default all find it.
cp /etc/ssl/certs/ca-certificates.crt "$CHROOT/etc/ssl/certs/ca-certificates.crt"
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
cp /etc/hosts "$CHROOT/etc/hosts"
if [ -n "$INTERP" ]; then install -D /usr/bin/qemu-aarch64-static "$CHROOT$INTERP"; fi
mount -t proc proc "$CHROOT/proc"
for d in sys dev; do
    mount --rbind "/$d" "$CHROOT/$d"
    mount --make-rslave "$CHROOT/$d" # unmounting ours never propagates back to the host's
done
[ "$(chroot "$CHROOT" uname -m)" = aarch64 ] || die "chroot uname -m is $(chroot "$CHROOT" uname -m), not aarch64"
# qemu-user (before 8.1) shows the host's x86 /proc/cpuinfo to aarch64 programs; ONNX Runtime's cpuinfo
# library then dereferences NULL while importing (SIGSEGV). A real aarch64 kernel lists ARM cores, so
# give the chroot such a list: Cortex-A78AE (Jetson Orin), one entry per host CPU.
if ! chroot "$CHROOT" grep -q '^CPU implementer' /proc/cpuinfo; then
    fake=$CHROOT/run/cpuinfo-aarch64
    mkdir -p "$(dirname "$fake")"
    : >"$fake"
    for ((i = 0; i < $(nproc); i++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd42\nCPU revision\t: 1\n\n' "$i" >>"$fake"
    done
    mount --bind "$fake" "$CHROOT/proc/cpuinfo"
    echo "qemu shows the host's /proc/cpuinfo: bound an aarch64 one over it in the chroot"
fi

# ---------------------------------------------------------------------------- 4. the agent's virtualenv
phase "wheel from the working tree"
rm -rf "$B/src" "$B/wheel"
mkdir -p "$B/src" "$B/wheel"
# Tracked and untracked-but-not-ignored files, as they are now (a file deleted in the tree is skipped).
git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$B/src" -xf -
(cd "$B/src" && "$HOST_PY" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation . -w "$B/wheel")
WHEEL=$(ls "$B"/wheel/jetfleet-*.whl)
rm -rf "$B/src"
echo "built $(basename "$WHEEL")"

PYTAG=$(chroot "$CHROOT" python3 -c 'import sys; print("%d%d" % sys.version_info[:2])')
GLIBC=$(chroot "$CHROOT" python3 -c 'import platform; print(platform.libc_ver()[1].replace(".", "_"))')
phase "aarch64 wheels for cp$PYTAG, glibc ${GLIBC//_/.}, from the package index"
# The resolver runs here, natively: pip under qemu takes ~45 s just to read the index pages. The
# chroot's own pip then installs with --no-index, so anything this missed fails loudly there.
platforms=()
for ((v = ${GLIBC#*_}; v >= 17; v--)); do platforms+=(--platform "manylinux_2_${v}_aarch64"); done
platforms+=(--platform manylinux2014_aarch64 --platform linux_aarch64)
mkdir -p "$B/wheelhouse"
rm -f "$B"/wheelhouse/jetfleet-*.whl
"$HOST_PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: "${platforms[@]}" \
    --implementation cp --python-version "${PYTAG:0:1}.${PYTAG:1}" --abi "cp$PYTAG" \
    -d "$B/wheelhouse" "${WHEEL}[agent]" 2> >(grep -v "is ignored: it is neither" >&2) ||
    echo "warning: host-side resolution failed; trying the wheels cached before, then the chroot's own pip" >&2
rm -f "$B"/wheelhouse/jetfleet-*.whl

phase "virtualenv $AGENT_VENV in the chroot: pip install '$(basename "$WHEEL")[agent]'"
mkdir -p "$CHROOT/tmp/wheel"
cp "$WHEEL" "$CHROOT/tmp/wheel/"
cp -r "$B/wheelhouse" "$CHROOT/tmp/wheelhouse"
IN_WHEEL=/tmp/wheel/$(basename "$WHEEL")
# The venv's pip is Debian's bundled wheel (the one ensurepip would install), unpacked from here: ensurepip
# under emulation byte-compiles pip and setuptools for 20 s.
chroot "$CHROOT" "${IN_ENV[@]}" python3 -m venv --without-pip "$AGENT_VENV"
site=$(chroot "$CHROOT" "$AGENT_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
pip_whl=$(ls "$CHROOT"/usr/share/python-wheels/pip-*.whl)
"$HOST_PY" -m zipfile -e "$pip_whl" "$CHROOT$site"
# --no-compile: byte-compiling every module of numpy, onnx, ... under emulation costs a minute; the
# agent compiles what it imports on first use.
pip_in=(chroot "$CHROOT" "${IN_ENV[@]}" "$AGENT_VENV/bin/python" -m pip install --quiet --no-compile --progress-bar off)
if ! waited "${pip_in[@]}" --no-index --find-links /tmp/wheelhouse "${IN_WHEEL}[agent]"; then
    echo "installing from the package index inside the chroot (slow under emulation)"
    waited "${pip_in[@]}" --find-links /tmp/wheelhouse "${IN_WHEEL}[agent]"
fi
rm -rf "$CHROOT/tmp/wheelhouse"
chroot "$CHROOT" "${IN_ENV[@]}" "$AGENT_VENV/bin/python" - <<'EOF'
import importlib.metadata as md
import platform
import sys

print(f"inside: {platform.machine()}, Python {platform.python_version()}, {platform.libc_ver()}")
installed = {d.metadata["Name"].lower(): d.version for d in md.distributions()}
print("installed: " + " ".join(f"{n}=={v}" for n, v in sorted(installed.items())))
heavy = sorted(set(installed) & {"torch", "torchvision", "scikit-learn", "sqlalchemy", "alembic", "matplotlib"})
if heavy:
    sys.exit(f"error: jetfleet[agent] pulled controller-side packages into the device: {heavy}")
if platform.machine() != "aarch64":
    sys.exit(f"error: the agent's Python runs on {platform.machine()}, not aarch64")
EOF

# ---------------------------------------------------------------------------- 5. the fleet
phase "device e2e: controller from .venv, agent in the aarch64 chroot"
waited env OMP_NUM_THREADS=1 "$HOST_PY" scripts/device_e2e.py \
    --agent-cmd "chroot $CHROOT ${IN_ENV[*]} $AGENT_VENV/bin/jetfleet-agent" \
    --agent-root "$CHROOT" --expect-arch aarch64 --work "$B/e2e"
end_phase
