#!/usr/bin/env bash
# The Docker engine `sam local` needs, started only when none answers.
#   engine.sh start   install Debian's docker.io if dockerd is missing (root), start it, wait for it;
#                     writes .voicebus/samlocal/dockerd.started when this script started it
#   engine.sh stop    stops the engine only if `start` started it
# Settings (see README, "sam local"): overlay2 (vfs copies every image layer per invoke),
# --userland-proxy=false (docker-proxy answers SAM's port check before the emulator
# listens, and SAM gives up), iptables on (SAM publishes the function's port on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/../.."
STATE=.voicebus/samlocal
mkdir -p "$STATE"
MARK="$STATE/dockerd.started"

start() {
    if docker info >/dev/null 2>&1; then
        echo "engine: a Docker engine is already running"
        return
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
            echo "engine: no Docker engine: install Docker (or run as root on Debian/Ubuntu)" >&2
            exit 1
        fi
        echo "engine: installing docker.io"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >"$STATE/apt.log" 2>&1 ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >"$STATE/apt.log" 2>&1; }
    fi
    echo "engine: starting dockerd (log: $STATE/dockerd.log)"
    setsid dockerd --storage-driver overlay2 --userland-proxy=false --iptables=true \
        >"$STATE/dockerd.log" 2>&1 </dev/null &
    echo $! >"$MARK"
    for _ in $(seq 1 120); do
        if docker info >/dev/null 2>&1; then
            echo "engine: ready"
            return
        fi
        sleep 0.5
    done
    echo "engine: dockerd did not answer within 60 s; see $STATE/dockerd.log" >&2
    exit 1
}

stop() {
    [ -f "$MARK" ] || return 0
    local pid
    pid="$(cat "$MARK")"
    rm -f "$MARK"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || { echo "engine: stopped"; return 0; }
            sleep 0.5
        done
        echo "engine: dockerd $pid still running after 30 s" >&2
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
