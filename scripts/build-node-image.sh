#!/usr/bin/env bash
# Build the codebolt node image with no image registry at all.
#
#   1. base:  debootstrap a minimal Debian bookworm with python3 from Debian's own packages, from
#             the mirror this host's apt already uses, and `docker import` it as codebolt-base:bookworm-2
#             (skipped when that tag exists: debootstrap takes about a minute).
#   2. wheels: `pip wheel .` on the host into build/wheelhouse/{deps,project}: the core install,
#             no extras (a node daemon needs no provider SDK). The host Python must have the same
#             major.minor as the base's python3, so binary wheels such as pydantic-core fit.
#   3. image: `docker build` from that base and wheelhouse, tagged codebolt-node:<version> and
#             codebolt-node:src-<content hash>; skipped when the hash tag already exists, so a
#             rebuild happens exactly when the sources, pyproject.toml or the Dockerfile change.
#
# Environment: PYTHON (host interpreter, default python3), CODEBOLT_BASE_IMAGE (skip step 1 and
# build FROM this image instead, e.g. python:3.11-slim where a registry is reachable),
# CODEBOLT_DEBIAN_MIRROR (override the mirror). Flags: --force rebuilds the image, --rebase also
# rebuilds the base. Prints the built tag on stdout; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
SUITE=bookworm
# The tag names the package set: a base cached before a package was added is not reused.
BASE_TAG=${CODEBOLT_BASE_IMAGE:-codebolt-base:$SUITE-2}
WHEELHOUSE=build/wheelhouse
FORCE=0
REBASE=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        --rebase) REBASE=1; FORCE=1 ;;
        *) echo "usage: $0 [--force] [--rebase]" >&2; exit 2 ;;
    esac
done

say() { echo "build-node-image: $*" >&2; }
has_image() { docker image inspect "$1" >/dev/null 2>&1; }

VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
HASH=$("$PYTHON" scripts/node_image_hash.py)
TAG=codebolt-node:$VERSION
HASH_TAG=codebolt-node:src-$HASH

if [ "$FORCE" = 0 ] && has_image "$HASH_TAG"; then
    docker tag "$HASH_TAG" "$TAG"
    say "up to date: $HASH_TAG"
    echo "$HASH_TAG"
    exit 0
fi

# The first bookworm (not -security) URI in this host's apt sources, deb822 or one-line format.
debian_mirror() {
    local uri
    uri=$(awk -v suite="$SUITE" '
        /^URIs:/ { uris = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite && uris != "") { print uris; exit } }
        /^deb / { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/ && $(i + 1) == suite) { print $i; exit } }
    ' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n 1)
    echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
    local mirror rootfs
    mirror=${CODEBOLT_DEBIAN_MIRROR:-$(debian_mirror)}
    if ! command -v debootstrap >/dev/null; then
        if [ "$(id -u)" = 0 ]; then
            say "installing debootstrap"
            apt-get install -y -q debootstrap >&2 || { apt-get update -q >&2 && apt-get install -y -q debootstrap >&2; }
        else
            say "debootstrap is missing: run 'sudo apt-get install debootstrap' (or set CODEBOLT_BASE_IMAGE)"
            exit 1
        fi
    fi
    if [ "$(id -u)" != 0 ]; then
        say "debootstrap needs root: run this script as root once (the base is cached), or set CODEBOLT_BASE_IMAGE"
        exit 1
    fi
    rootfs=$(mktemp -d /var/tmp/codebolt-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    say "debootstrap $SUITE from $mirror (about a minute)"
    debootstrap --variant=minbase --components=main \
        --include=python3,python3-venv,ca-certificates,iptables \
        "$SUITE" "$rootfs" "$mirror" >&2
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    say "importing $BASE_TAG"
    tar -C "$rootfs" --numeric-owner -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        - "$BASE_TAG" >&2
    rm -rf "$rootfs"
    trap - EXIT
}

if [ -n "${CODEBOLT_BASE_IMAGE:-}" ]; then
    has_image "$BASE_TAG" || { say "base image $BASE_TAG is not present"; exit 1; }
elif [ "$REBASE" = 1 ] || ! has_image "$BASE_TAG"; then
    build_base
else
    say "base $BASE_TAG is cached"
fi

# Binary wheels built for the host interpreter must match the base's python3.
HOST_ABI=$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
BASE_ABI=$(docker run --rm --network none --entrypoint python3 "$BASE_TAG" \
    -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
if [ "$HOST_ABI" != "$BASE_ABI" ]; then
    say "host Python is $HOST_ABI but $BASE_TAG has $BASE_ABI: binary wheels would not fit;" \
        "set PYTHON to a $BASE_ABI interpreter"
    exit 1
fi

# deps/ (every dependency) and project/ (this project) go into separate image layers, so a code
# change reinstalls only the project.
say "building the wheelhouse ($HOST_ABI)"
rm -rf "$WHEELHOUSE"
mkdir -p "$WHEELHOUSE/deps" "$WHEELHOUSE/project"
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$WHEELHOUSE/deps" . >&2
mv "$WHEELHOUSE"/deps/codebolt_topo-*.whl "$WHEELHOUSE/project/"

say "building $TAG from $BASE_TAG"
DOCKER_BUILDKIT=0 docker build --quiet \
    --build-arg "BASE=$BASE_TAG" \
    --label "org.codebolt.source-hash=$HASH" \
    -t "$TAG" -t "$HASH_TAG" . >&2
say "built $HASH_TAG"
echo "$HASH_TAG"
