#!/usr/bin/env bash
# Build (or reuse) the PostgreSQL image the container tests and docker-compose use where no registry can
# be reached: a Debian base made with debootstrap and `docker import`, then Debian's PostgreSQL on it
# (`docker build --network host`). Needs a running Docker engine (DOCKER_HOST or the default socket) and
# debootstrap. Prints the image's name on its last line; an image that exists is reused as it is.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# the tag names what the image holds: PostgreSQL 15 and the kernels built from these sources (changed
# sources, or a changed Dockerfile: a new tag, so a machine never reuses an image of older kernels)
sources=$(cat "$here/Dockerfile" "$here/docker-entrypoint.sh" "$here/../../sqlnet/native/"{*.c,*.control,*.sql,Makefile} | sha256sum | cut -c1-12)
image=${SQLNET_POSTGRES_IMAGE:-sqlnet/postgres:15-kernels-$sources}
base=${SQLNET_DEBIAN_BASE:-sqlnet/debian:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "reusing $image" >&2
  echo "$image"
  exit 0
fi
if ! docker image inspect "$base" >/dev/null 2>&1; then
  root=$(mktemp -d)
  chmod 755 "$root"  # it becomes the image's /: mktemp makes it 700, which only root could enter
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap: a minimal Debian bookworm from $mirror (about a minute)" >&2
  debootstrap --variant=minbase bookworm "$root" "$mirror" >&2
  tar -C "$root" -c . | docker import - "$base" >&2
fi
# the build context: this folder and the kernels' sources
context=$(mktemp -d)
trap 'rm -rf "$context" ${root:+"$root"}' EXIT
cp "$here/Dockerfile" "$here/docker-entrypoint.sh" "$context/"
mkdir "$context/native"
cp "$here/../../sqlnet/native/"{*.c,*.control,*.sql,Makefile} "$context/native/"
docker build --network host --build-arg BASE="$base" -t "$image" "$context" >&2
echo "$image"
