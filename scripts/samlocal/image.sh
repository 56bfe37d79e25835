#!/usr/bin/env bash
# The Python 3.13 Lambda base image SAM builds its invoke image from, for one architecture:
#   image.sh x86_64|arm64
# The real public.ecr.aws/lambda/python:3.13-<arch> is used when present or pullable.
# Otherwise a stand-in is built under that tag from real parts: a Debian trixie rootfs
# (python3.13), AWS's runtime interface client (awslambdaric) and the SDK (boto3) from
# PyPI, laid out as Lambda's image is (/var/lang, /var/runtime, /var/task, /opt) with the
# ENV, WORKDIR and ENTRYPOINT of AWS's Dockerfile. A stand-in is labelled with the hash
# of this recipe, so it is rebuilt only when the recipe changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCH="${1:?usage: image.sh x86_64|arm64}"
case "$ARCH" in
    x86_64) DEB_ARCH=amd64; PIP_PLATFORM=manylinux2014_x86_64; QEMU= ;;
    arm64) DEB_ARCH=arm64; PIP_PLATFORM=manylinux2014_aarch64; QEMU=aarch64 ;;
    *) echo "image: unknown architecture $ARCH" >&2; exit 2 ;;
esac
TAG="public.ecr.aws/lambda/python:3.13-$ARCH"
HERE=scripts/samlocal
mkdir -p .voicebus/samlocal
# Bump RECIPE_VERSION when what goes into the image changes; the runtime files are hashed in.
RECIPE_VERSION=1
RECIPE="$( (echo "$RECIPE_VERSION"; cat "$HERE"/runtime/*) | sha256sum | cut -c1-16)"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PIP_PY="${PIP_PYTHON:-.tools/bin/python3.13}"

label() { docker image inspect --format '{{ index .Config.Labels "voicebus.samlocal.recipe" }}' "$TAG" 2>/dev/null; }

if docker image inspect "$TAG" >/dev/null 2>&1; then
    current="$(label || true)"
    if [ -z "$current" ] || [ "$current" = "<no value>" ] || [ "$current" = "$RECIPE" ]; then
        echo "image: $TAG present${current:+ (stand-in $current)}"
        exit 0
    fi
    echo "image: $TAG is an older stand-in ($current); rebuilding"
elif timeout 60 docker pull --platform "linux/$ARCH" "$TAG" >/dev/null 2>&1; then
    echo "image: pulled the real $TAG"
    exit 0
fi

if [ -n "$QEMU" ]; then
    # Another architecture's binaries run through qemu-user-static, registered in
    # binfmt_misc with the F flag (the interpreter is opened now, so it works in containers).
    command -v "qemu-$QEMU-static" >/dev/null 2>&1 ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >>.voicebus/samlocal/apt.log 2>&1
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$QEMU" ]; then
        magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
        mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
        echo ":qemu-$QEMU:M::$magic:$mask:/usr/bin/qemu-$QEMU-static:F" >/proc/sys/fs/binfmt_misc/register
    fi
    grep -q '^flags:.*F' "/proc/sys/fs/binfmt_misc/qemu-$QEMU" ||
        echo "image: warning: the qemu-$QEMU binfmt handler lacks the F flag; containers may not find qemu" >&2
fi
command -v debootstrap >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >>.voicebus/samlocal/apt.log 2>&1

WORK=".voicebus/samlocal/image-$ARCH"
ROOTFS="$WORK/rootfs"
cleanup() {
    local status=$?
    if [ "$status" != 0 ]; then
        echo "image: building $TAG failed; the logs' last lines:" >&2
        tail -n 20 "$WORK"/*.log >&2 2>/dev/null || true
    fi
    # debootstrap mounts /proc and /sys in the rootfs; never delete through a mount.
    grep -o " $PWD/$ROOTFS/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cleanup
mkdir -p "$WORK"
start=$SECONDS
echo "image: building the stand-in $TAG (recipe $RECIPE) in $WORK"
if [ -n "$QEMU" ]; then
    debootstrap --variant=minbase --include=python3.13 --arch="$DEB_ARCH" --foreign trixie "$ROOTFS" "$MIRROR" \
        >"$WORK/debootstrap.log" 2>&1
    chroot "$ROOTFS" /debootstrap/debootstrap --second-stage >>"$WORK/debootstrap.log" 2>&1
else
    debootstrap --variant=minbase --include=python3.13 --arch="$DEB_ARCH" trixie "$ROOTFS" "$MIRROR" \
        >"$WORK/debootstrap.log" 2>&1
fi
echo "image: rootfs ready after $((SECONDS - start)) s"

SITE="$ROOTFS/var/lang/lib/python3.13/site-packages"
mkdir -p "$ROOTFS/var/lang/bin" "$SITE" "$ROOTFS/var/runtime" "$ROOTFS/var/task" "$ROOTFS/opt"
for name in python3.13 python3 python; do ln -sf /usr/bin/python3.13 "$ROOTFS/var/lang/bin/$name"; done
pip_target() {
    "$PIP_PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-compile \
        --only-binary=:all: --platform "$PIP_PLATFORM" --python-version 3.13 --implementation cp \
        --target "$1" "${@:2}" >>"$WORK/pip.log" 2>&1
}
pip_target "$SITE" boto3
pip_target "$ROOTFS/var/runtime" awslambdaric
install -m 0755 "$HERE/runtime/bootstrap" "$ROOTFS/var/runtime/bootstrap"
install -m 0644 "$HERE/runtime/bootstrap.py" "$ROOTFS/var/runtime/bootstrap.py"
install -m 0755 "$HERE/runtime/lambda-entrypoint.sh" "$ROOTFS/lambda-entrypoint.sh"
# Lambda's image ships its SDK and runtime compiled; nothing under /var is writable there.
chroot "$ROOTFS" /usr/bin/python3.13 -m compileall -q -j0 --invalidation-mode unchecked-hash \
    /var/lang/lib/python3.13/site-packages /var/runtime >/dev/null
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/debootstrap

tar -C "$ROOTFS" -cf "$WORK/rootfs.tar" .
cat >"$WORK/Dockerfile" <<DOCKERFILE
FROM scratch
ADD rootfs.tar /
ENV LANG=en_US.UTF-8 \\
    TZ=:/etc/localtime \\
    PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin \\
    LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib \\
    LAMBDA_TASK_ROOT=/var/task \\
    LAMBDA_RUNTIME_DIR=/var/runtime
LABEL voicebus.samlocal.recipe=$RECIPE
WORKDIR /var/task
ENTRYPOINT ["/lambda-entrypoint.sh"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build --quiet --platform "linux/$ARCH" -t "$TAG" "$WORK" >/dev/null 2>"$WORK/build.log"
# SAM keeps its per-invoke images (base + emulator + layers) by tag: drop those built on an older base.
docker images samcli/lambda-python --format '{{.Repository}}:{{.Tag}}' | grep -e "-$ARCH-" | xargs -r docker rmi >/dev/null || true
echo "image: built $TAG in $((SECONDS - start)) s"
