#!/usr/bin/env bash
# Build the container image and check it against this host, printing one JSON line per check:
#   build     build time and image size; no compilers, CMake, colcon or tests in the image
#   sim       `run --network host` of the default image (sim backend): poses a subscriber on this
#             host receives for DURATION_S (>= 20 Hz) with every diagnostic status OK at the end
#   sigterm   the same container stopped with SIGTERM: seconds to exit (<= 5) and exit status
#   serial    the serial backend in the container against `echoloc fake-device` on this host,
#             its pseudo-terminal passed in as the array's /dev/ttyACM0: poses near its position
#   sim_on_host  the same graph and subscriber without a container, for comparison (the rate on
#             a shared machine follows its load); it does not fail the script
#   total     seconds for the whole script
# Exit status 1 when a check fails. Takes about 10 minutes from a cold build here (README,
# Container), too long for every CI run: run it before each release and after a change to the
# Dockerfile, requirements.txt or the set-up.
#
# Usage: scripts/container-check.sh [BUILD_OPTION ...]   e.g. --no-cache for a cold build
# Environment: ENGINE (podman), IMAGE (localhost/echoloc:check), BASE (the base image; default:
# localhost/debian-minbase:bookworm where the project's machines make it, else
# debian:bookworm-slim), DURATION_S (20), ECHOLOC_TEST_DOMAIN_ID (ROS domain of the checks).
set -euo pipefail
cd "$(dirname "$0")/.."
start_s=$(date +%s.%N)
engine=${ENGINE:-podman}
image=${IMAGE:-localhost/echoloc:check}
duration_s=${DURATION_S:-20}
domain=${ECHOLOC_TEST_DOMAIN_ID:-${ROS_DOMAIN_ID:-0}}
name=echoloc-check
json() { python -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1])))' "$1"; }
since() { python -c 'import sys, time; print(round(time.time() - float(sys.argv[1]), 1))' "$1"; }

# On the project's machines plain podman fails; ../shared/containers makes a configuration that
# works and a local Debian base image (no registry is reachable there).
if [ "$engine" = podman ] && [ -z "${CONTAINERS_CONF:-}" ] \
    && [ -f ../shared/containers/base-image.sh ]; then
  eval "$(bash ../shared/containers/base-image.sh build/containers | tail -1)"
fi
if [ -z "${BASE:-}" ]; then
  BASE=debian:bookworm-slim
  if "$engine" image exists localhost/debian-minbase:bookworm 2>/dev/null; then
    BASE=localhost/debian-minbase:bookworm
  fi
fi

# Containers of an earlier, interrupted run would join the checks' ROS domain: remove them first.
cleanup() {
  local c
  for c in "$name" "$name-serial"; do
    "$engine" rm --force --time 0 "$c" >/dev/null 2>&1 || true
  done
  local pid
  for pid in "${fake_pid:-}" "${host_pid:-}"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  done
}
trap cleanup EXIT
cleanup

# The host's venv serves the subscriber and the fake device.
bash scripts/setup.sh >/dev/null
# shellcheck disable=SC1091
source scripts/env.sh
# The discovery range stays the default (SUBNET): with LOCALHOST the host and the container
# exchanged no data here (README, Container); the domain keeps the checks apart.
export ROS_DOMAIN_ID=$domain ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET

# This host's pip settings (wheel directory, CA bundle) go into the build as pip's own variables,
# the paths mounted read-only: on this machine the CPU torch lies in the wheel directory.
pip_setting() {
  python -m pip config list 2>/dev/null | sed -n -E "s/^[^.]*\.$1='(.*)'$/\1/p" | tail -1
}
pip_args=()
links=$(pip_setting find-links)
if [ -n "$links" ] && [ -d "$links" ]; then
  pip_args+=(--build-arg "PIP_FIND_LINKS=$links" --volume "$links:$links:ro")
fi
cert=$(pip_setting cert)
if [ -n "$cert" ] && [ -f "$cert" ]; then
  pip_args+=(--build-arg PIP_CERT=/run/pip-ca.crt --volume "$cert:/run/pip-ca.crt:ro")
fi

build_start_s=$(date +%s.%N)
"$engine" build --network host --build-arg "BASE=$BASE" "${pip_args[@]}" "$@" -t "$image" . \
  > build/containers/build.log 2>&1 || { tail -20 build/containers/build.log >&2; exit 1; }
build_s=$(since "$build_start_s")
size_b=$("$engine" image inspect --format '{{.Size}}' "$image")
# What must not be in the runtime image.
leftovers=$("$engine" run --rm --entrypoint sh "$image" -c \
  'for t in cc gcc g++ cmake make colcon pytest; do command -v $t; done; \
   ls -d /opt/echoloc/test /opt/echoloc/.venv/lib/python3*/site-packages/pytest 2>/dev/null; \
   [ "$(id -u)" != 0 ] || echo "runs as root"' || true)
build_ok=$([ -z "$leftovers" ] && echo true || echo false)
json "{\"check\": \"build\", \"ok\": $build_ok, \"base\": \"$BASE\", \"build_s\": $build_s,
       \"image_mb\": $((size_b / 1000000)), \"build_options\": \"$*\",
       \"leftovers\": $(python -c 'import json, sys; print(json.dumps(sys.argv[1].split()))' \
                        "$leftovers")}"
failed=$([ "$build_ok" = true ] && echo 0 || echo 1)


# The default image on the host network: the subscriber here must hear it.
"$engine" run --detach --name "$name" --network host -e "ROS_DOMAIN_ID=$domain" "$image" \
  >/dev/null
python scripts/container-listen.py --name sim --duration-s "$duration_s" --settle-s 5 \
  --diagnostics-ok || failed=1

# SIGTERM, as `docker stop` or a service manager sends it. stop_s runs to the exit of the
# container's PID 1 as the engine recorded it; stop_cli_s to the return of `wait` (the engine's
# own commands take seconds on a loaded machine).
stop_start_s=$(date +%s.%N)
"$engine" kill --signal TERM "$name" >/dev/null
code=$("$engine" wait "$name")
stop_cli_s=$(since "$stop_start_s")
stop_s=$(python -c 'import re, sys
from datetime import datetime
finished = re.match(r"(\S+ [0-9:]+)(\.\d+)?", sys.argv[1])
frac = float("0" + (finished[2] or ""))
at = datetime.fromisoformat(finished[1] + "+00:00").timestamp() + frac
print(round(at - float(sys.argv[2]), 1))' \
  "$("$engine" inspect --format '{{.State.FinishedAt.UTC}}' "$name")" "$stop_start_s")
stopped=$("$engine" logs "$name" 2>&1 | grep -o 'stopped {.*}' | tail -1 || true)
stop_ok=false
if [ "$code" = 0 ] && python -c 'import sys; sys.exit(float(sys.argv[1]) > 5)' "$stop_s"; then
  stop_ok=true
fi
json "{\"check\": \"sigterm\", \"ok\": $stop_ok, \"stop_s\": $stop_s, \"stop_cli_s\": $stop_cli_s,
       \"exit_status\": $code, \"nodes\": \"${stopped#stopped }\"}"
[ "$stop_ok" = true ] || failed=1
"$engine" rm "$name" >/dev/null

# The serial backend against the fake array on this host. Its pseudo-terminal is owned like a USB
# serial device (group dialout, 0660) and reached through that group. A real device goes in with
# --device; a pty cannot: the node --device makes names the pty of the kernel's first devpts
# instance, not this host's (open gives EIO), so the pty is bind-mounted and allowed by rule.
fifo=build/containers/fake-device.out
rm -f "$fifo" && mkfifo "$fifo"
echoloc fake-device --link build/containers/array --position 2.0 1.5 0.3 --yaw 0.0 \
  > "$fifo" 2>build/containers/fake-device.log &
fake_pid=$!
link=$(python -c 'import json, sys; print(json.loads(sys.stdin.readline())["port"])' < "$fifo")
pty=$(readlink -f "$link")
chgrp dialout "$pty" && chmod 660 "$pty"
"$engine" run --detach --name "$name-serial" --network host -e "ROS_DOMAIN_ID=$domain" \
  --volume "$pty:/dev/ttyACM0" --device-cgroup-rule "c $((16#$(stat -c %t "$pty"))):* rwm" \
  --group-add "$(stat -c %g "$pty")" "$image" bringup --set driver.backend=serial \
  --set localizer.heading_source=fixed --set localizer.fixed_yaw_rad=0.0 >/dev/null
python scripts/container-listen.py --name serial --duration-s 10 --settle-s 3 --min-rate-hz 5 \
  --position 2.0 1.5 0.3 || failed=1
"$engine" logs "$name-serial" > build/containers/serial.log 2>&1 || true

"$engine" rm --force --time 5 "$name-serial" >/dev/null
kill "$fake_pid" && wait "$fake_pid" || true
fake_pid=

# The same graph and subscriber without a container, right after: on a shared machine the rate
# follows the load, and this tells the container's cost from the machine's.
echoloc bringup > build/containers/host-bringup.log 2>&1 &
host_pid=$!
python scripts/container-listen.py --name sim_on_host --duration-s "$duration_s" --settle-s 5 \
  --diagnostics-ok || true
kill -TERM "$host_pid" && wait "$host_pid" || true

json "{\"check\": \"total\", \"ok\": $([ "$failed" = 0 ] && echo true || echo false),
       \"seconds\": $(since "$start_s")}"
exit "$failed"
