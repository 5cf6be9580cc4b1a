#!/usr/bin/env bash
# Make sure a Docker Engine answers `docker info`.
#
# - An engine that already answers is used as it is.
# - On Debian as root, Docker Engine is installed from Debian's own packages (docker.io)
#   when missing, and dockerd is started in the background (through systemd when it runs).
# - Anywhere else the script stops and says how to get Docker.
#
# Safe to run any number of times. DOCKERD_LOG chooses where dockerd's log goes.
set -euo pipefail

log="${DOCKERD_LOG:-/var/log/dockerd.log}"
say() { echo "ensure-docker: $*"; }

engine_answers() { docker info >/dev/null 2>&1; }

# True when PID is a dockerd that is alive (not a zombie left by a kill).
running_dockerd() {
    local state
    state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = dockerd ] && [ "$state" != Z ] && [ "$state" != X ]
}

if command -v docker >/dev/null 2>&1 && engine_answers; then
    say "Docker Engine $(docker version --format '{{.Server.Version}}') is running; nothing to do."
    exit 0
fi

if [ ! -r /etc/debian_version ] || [ "$(id -u)" -ne 0 ]; then
    say "no Docker Engine answers and this is not Debian as root, so it cannot be installed here." >&2
    say "Install Docker (https://docs.docker.com/engine/install/), start it, and run this again." >&2
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    say "installing Docker Engine from Debian's packages (docker.io)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends docker.io iptables ca-certificates >/dev/null
    say "installed $(dockerd --version)."
fi

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    say "starting Docker Engine with systemctl..."
    systemctl start docker
else
    pid="$(cat /var/run/docker.pid 2>/dev/null || true)"
    if [ -n "$pid" ] && running_dockerd "$pid"; then
        say "dockerd (pid $pid) is starting; waiting for it..."
    else
        # What a killed dockerd leaves behind stops a new one from starting: its pid file,
        # and the containerd it managed, still holding its socket.
        rm -f /var/run/docker.pid
        if pkill -f '^containerd --config /var/run/docker/containerd/containerd.toml'; then
            sleep 2
        fi
        rm -f /var/run/docker/containerd/containerd.pid
        say "starting dockerd in the background (log: $log)..."
        mkdir -p "$(dirname "$log")"
        nohup dockerd >>"$log" 2>&1 </dev/null &
    fi
fi

for _ in $(seq 60); do
    if engine_answers; then
        say "Docker Engine $(docker version --format '{{.Server.Version}}') is running."
        exit 0
    fi
    sleep 1
done
say "dockerd did not answer within 60 s; the end of its log:" >&2
tail -n 20 "$log" >&2 || true
exit 1
