# Source this (bash) after scripts/setup.sh: the venv plus the built messages.
_echoloc_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
source "$_echoloc_root/.venv/bin/activate"
_echoloc_site=$(echo "$_echoloc_root"/install/echoloc/lib/python3*/site-packages)
export AMENT_PREFIX_PATH=$_echoloc_root/install/echoloc:$_echoloc_root/.venv
export PYTHONPATH=$_echoloc_site${PYTHONPATH:+:$PYTHONPATH}
export LD_LIBRARY_PATH=$_echoloc_root/install/echoloc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
unset _echoloc_root _echoloc_site
