#!/usr/bin/env bash
# labkit's set-up on a fresh Debian/Ubuntu machine, and its two entry points.
#
#   sudo ./run.sh course   install what is missing, then start JupyterLab on
#                          the notebooks with the sandboxed 'labkit' kernel
#   sudo ./run.sh test     install what is missing, then run every test:
#                          ruff, pytest against the real kernel, the notebooks
#                          under nbval, the control panel in headless Chromium
#   ./run.sh install       only install (Debian packages need root or sudo)
#
# Extra arguments go to JupyterLab (course) or pytest (test).
# Environment: LABKIT_VENV (default .venv), LABKIT_PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

VENV=${LABKIT_VENV:-.venv}
PYTHON=${LABKIT_PYTHON:-python3}
DEBS=(iproute2 iptables nftables iputils-ping net-tools curl procps util-linux
      python3 python3-venv python3-pip chromium)

say() { printf 'labkit: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else say "need root to run: $*  (run this script with sudo)"; exit 1
  fi
}

install_debs() {
  local missing=()
  for pkg in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

install_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the Python environment in $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  say "installing labkit and its Python packages"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[course,test]'
  "$VENV/bin/python" -m labkit.jupyter install >/dev/null
}

install() { install_debs; install_python; }

case "${1:-}" in
  install)
    install ;;
  course)
    shift; install
    "$VENV/bin/labkit" doctor -q || true
    root_flag=(); [ "$(id -u)" -eq 0 ] && root_flag=(--allow-root)
    exec "$VENV/bin/jupyter" lab --notebook-dir=notebooks --ip=127.0.0.1 \
      --MappingKernelManager.default_kernel_name=labkit "${root_flag[@]}" "$@" ;;
  test)
    shift; install
    say "ruff"
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    say "pytest (tests, doctests, notebooks under nbval)"
    exec "$VENV/bin/python" -m pytest --nbval --nbval-sanitize-with notebooks/nbval-sanitize.cfg \
      tests labkit notebooks "$@" ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
