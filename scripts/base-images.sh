#!/usr/bin/env bash
# Make python:<version>-slim images available to `docker build`, for each version given
# (default: 3.11 3.13).
#
# 1. An image already present is kept: nothing is done.
# 2. Otherwise `docker pull` is tried.
# 3. If the registry cannot be reached, a local stand-in is built from Debian packages
#    (debootstrap, minimal variant) and tagged with the official name, so Dockerfiles that
#    say `FROM python:3.11-slim` build unchanged.
#
# Environment:
#   EXTRA_CA_BUNDLE  PEM file of extra certificate authorities to trust inside the stand-in
#                    (a corporate or intercepting proxy's CA). Default: the build host's own
#                    CA bundle, so builds trust what the host trusts. "none" adds nothing.
#   DEBIAN_MIRROR    Debian mirror for debootstrap. Default: the first one in the host's apt
#                    sources, else debootstrap's own default.
set -euo pipefail

say() { echo "base-images: $*"; }
die() { echo "base-images: $*" >&2; exit 1; }

# The one place that says which Debian release provides which Python.
debian_suite_for() {
    case "$1" in
        3.11) echo bookworm ;;
        3.13) echo trixie ;;
        *) return 1 ;;
    esac
}

default_ca_bundle() {
    for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
        [ -r "$f" ] && { echo "$f"; return; }
    done
    echo none
}

host_mirror() {
    { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *\([^ ]*\).*/\1/p' || true
      cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
          | sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' || true
    } | grep -v -e security -e '^$' | head -n 1 || true
}

ensure_debootstrap() {
    command -v debootstrap >/dev/null 2>&1 && return
    [ -r /etc/debian_version ] && [ "$(id -u)" -eq 0 ] \
        || die "debootstrap is needed to build a stand-in; install it (Debian: apt-get install debootstrap)."
    say "installing debootstrap from Debian's packages..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null \
        || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null; }
}

build_stand_in() {
    local version="$1" image="$2" suite rootfs ca mirror created
    suite="$(debian_suite_for "$version")" \
        || die "no Debian release provides Python $version, so no stand-in for $image can be built (available: 3.11, 3.13)."
    ensure_debootstrap
    rootfs="$(mktemp -d "${TMPDIR:-/tmp}/python-${version}-rootfs.XXXXXX")"
    # shellcheck disable=SC2064  # expand now: the trap must remove this rootfs
    trap "rm -rf '$rootfs'" EXIT

    mirror="${DEBIAN_MIRROR:-$(host_mirror)}"
    say "building a stand-in for $image from Debian $suite (debootstrap, minimal variant)..."
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        "$suite" "$rootfs" ${mirror:+"$mirror"} >"$rootfs.log" 2>&1 \
        || { tail -n 20 "$rootfs.log" >&2; die "debootstrap $suite failed (full log: $rootfs.log)."; }
    rm -f "$rootfs.log"

    local got
    got="$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    [ "$got" = "$version" ] || die "Debian $suite gave Python $got, not $version."

    ca="${EXTRA_CA_BUNDLE:-$(default_ca_bundle)}"
    local ca_env=()
    if [ "$ca" != none ]; then
        [ -r "$ca" ] || die "EXTRA_CA_BUNDLE=$ca is not a readable file."
        say "trusting the extra CA bundle $ca inside the image."
        # update-ca-certificates wants one certificate per file.
        awk -v dir="$rootfs/usr/local/share/ca-certificates" '
            /-----BEGIN CERTIFICATE-----/ { n++; out = sprintf("%s/extra-ca-%04d.crt", dir, n) }
            out { print > out }
            /-----END CERTIFICATE-----/ { close(out); out = "" }' "$ca"
        local out
        out="$(chroot "$rootfs" update-ca-certificates 2>&1)" || { echo "$out" >&2; die "update-ca-certificates failed."; }
        # pip and requests carry their own CA lists; point them at the system bundle.
        ca_env=(--change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt"
                --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
                --change "ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt")
    fi

    # Behave like the official image: `python` and `pip` on PATH, pip allowed outside a venv.
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
    ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
    rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
    # Slim like the official image: no package caches, lists, docs or man pages.
    rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
        "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log "$rootfs"/tmp/*

    created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    tar -C "$rootfs" -c . | docker import \
        --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV LANG=C.UTF-8" \
        --change "ENV PYTHON_VERSION=$version" \
        "${ca_env[@]}" \
        --change 'CMD ["python3"]' \
        --change "LABEL org.opencontainers.image.title=\"$image (local stand-in)\"" \
        --change "LABEL org.opencontainers.image.description=\"Local stand-in for the official $image image, built from Debian $suite packages because the registry could not be reached\"" \
        --change "LABEL org.opencontainers.image.base.name=\"debian:$suite\"" \
        --change "LABEL org.opencontainers.image.version=\"$version\"" \
        --change "LABEL org.opencontainers.image.created=\"$created\"" \
        --change "LABEL org.opencontainers.image.vendor=\"cookiecutter-ml-container\"" \
        --change "LABEL io.github.cookiecutter-ml-container.stand-in=\"true\"" \
        --change "LABEL io.github.cookiecutter-ml-container.debian-suite=\"$suite\"" \
        - "$image" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    say "built $image ($(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))."
}

versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.11 3.13)
for version in "${versions[@]}"; do
    image="python:${version}-slim"
    if docker image inspect "$image" >/dev/null 2>&1; then
        say "$image is already present; nothing to do."
        continue
    fi
    say "pulling $image..."
    if docker pull "$image" >/dev/null 2>&1; then
        say "pulled $image."
        continue
    fi
    say "could not pull $image (no registry access?); building a local stand-in."
    start=$SECONDS
    build_stand_in "$version" "$image"
    say "$image took $((SECONDS - start)) s."
done
