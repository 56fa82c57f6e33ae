#!/usr/bin/env bash
# make test-ros: the real-install tier, as a ROS 2 user runs it. The ROS 2 pieces no package
# registry carries (launch, launch_ros, ros2cli, launch_pytest, diagnostic_updater) are built
# from ../shared/ros-underlay into build/underlay; package.xml's keys are resolved with rosdep
# for kilted, jazzy and humble (offline, ros-underlay/rosdep-check.sh); echoloc is built from a
# copy of this checkout in a colcon workspace (build/ros_ws, as `git clone` into src/ gives it),
# then `colcon test` runs the launch_pytest tier and the ament linters there, and
# `colcon test-result` reports.
# The package's pytest suite is `make test`'s; ECHOLOC_COLCON_TEST_ALL=1 runs it here as well.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
underlay_src=${ECHOLOC_ROS_UNDERLAY:-$root/../shared/ros-underlay}
if [ ! -f "$underlay_src/build.sh" ]; then
  echo "[test-ros] SKIPPED: no $underlay_src to build launch, launch_ros, ros2cli and" \
       "launch_pytest from; on a ROS 2 install run colcon test (README, 'On a ROS 2 install')"
  exit 0
fi

# rosdep install --simulate, offline, on kilted, jazzy and humble: every package.xml key resolves.
bash "$underlay_src/rosdep-check.sh" . build/rosdep

# The venv stands for /opt/ros/<distro> plus requirements-ros.txt: the ROS 2 wheels and pip's.
# shellcheck disable=SC1091
source .venv/bin/activate
export AMENT_PREFIX_PATH=$VIRTUAL_ENV RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
bash "$underlay_src/build.sh" build/underlay
set +u
# shellcheck disable=SC1091
source build/underlay/setup.bash
set -u
# The diagnostics contract against the real diagnostic_updater (make test checks the fallback).
(set +u && source scripts/env.sh && source build/underlay/setup.bash \
  && python -m pytest -q -rs -p no:cacheprovider test/test_diagnostics_contract.py)

ws=$root/build/ros_ws
rm -rf "$ws/src" && mkdir -p "$ws/src/echoloc"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  if [ -e "$f" ]; then cp --parents -t "$ws/src/echoloc" "$f"; fi
done
cd "$ws"
# The extra CMake arguments are the wheels' (a real install needs none): their Python is the
# venv's, and their libraries are found through RPATH rather than /opt/ros's lib directory.
colcon build --packages-select echoloc --event-handlers console_direct- --cmake-args \
  -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" -DCMAKE_INSTALL_RPATH_USE_LINK_PATH=ON
set +u
# shellcheck disable=SC1091
source install/setup.bash
set -u
# The installed copy's physics kernels into its own numba cache, not in the first launch test.
python "$root/scripts/compile-kernels.py"
ctest_args=(--ctest-args -E '^pytest$')
[ "${ECHOLOC_COLCON_TEST_ALL:-0}" = 1 ] && ctest_args=()
# Results of an earlier run would be counted again.
colcon test-result --delete-yes >/dev/null
colcon test --packages-select echoloc "${ctest_args[@]}"
colcon test-result --verbose
