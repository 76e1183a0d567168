#!/usr/bin/env bash
# labkit's set-up on a fresh Debian/Ubuntu machine, and its two entry points.
# Run it as root: a fresh Debian machine has no sudo, and root needs none. An
# ordinary user with sudo rights prefixes sudo (`sudo ./run.sh course`); run
# without it, it asks sudo only for apt-get (as_root) and does the rest as them.
#
#   ./run.sh course    install what is missing, then start JupyterLab on the
#                      notebooks with the sandboxed 'labkit' kernel
#   ./run.sh test      install what is missing, then run every test: ruff,
#                      pytest against the real kernel, the notebooks under
#                      nbval, the control panel in headless Chromium
#   ./run.sh install   only install (`install course`: only what the course needs,
#                      not the test tools)
#   ./run.sh start     start JupyterLab as `course` does, installing nothing (the
#                      container image's command, see deploy/)
#   ./run.sh classroom install what is missing, then start JupyterHub for a class
#                      (as root; deploy/jupyterhub/jupyterhub_config.py says how)
#
# A user who may create user namespaces can run `sudo ./run.sh install` once,
# then `./run.sh course` as themselves: JupyterLab then runs as that user.
# Extra arguments go to JupyterLab (course) or pytest (test).
# Environment: LABKIT_VENV (default .venv), LABKIT_PYTHON (default
# /usr/bin/python3 where it exists, else python3).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

VENV=${LABKIT_VENV:-.venv}
# Debian's python3 by default: the sandbox's learner is another user than
# root, and must be able to run the environment's Python (a pyenv Python
# under /root, mode 700, is out of its reach).
if [ -n "${LABKIT_PYTHON:-}" ]; then PYTHON=$LABKIT_PYTHON
elif [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3
else PYTHON=python3
fi
DEBS=(iproute2 iptables nftables iputils-ping net-tools curl procps util-linux
      kmod acl python3 python3-venv python3-pip)
# only for `test`: the browser tests' Chromium, tcpdump (the capture tests read
# pcapng files with `tcpdump -r`), and podman with what builds the course's
# container image locally (tests/test_container.py)
TEST_DEBS=(chromium tcpdump podman runc slirp4netns mmdebstrap)
# the classroom's proxy (configurable-http-proxy, from the npm registry) runs on Node.js
HUB_DEBS=(nodejs)
HUB_CONFIG=deploy/jupyterhub/jupyterhub_config.py
EXTRAS=course,test,classroom

say() { printf 'labkit: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else say "need root to run: $*  (run this script as root, or with sudo)"; exit 1
  fi
}

# The machine's uid of the sandbox's root when root starts labkit (labkit's
# own answer, from the source here, so it works before labkit is installed).
sandbox_uid() {
  PYTHONPATH=. "$1" -c 'from labkit.kernel.sandbox import learner_ids; print(learner_ids(0, 0)[0])'
}

# Whether user $1 (a bare uid, not in any group) can read and enter path $2.
usable_by() {
  setpriv --reuid="$1" --regid="$1" --clear-groups -- test -r "$2" -a -x "$2" 2>/dev/null
}

install_debs() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

# As root: an environment made from a Python the learner cannot run (pyenv's
# under /root) is made again from $PYTHON, if the learner can run that one.
check_venv_home() {
  [ "$(id -u)" -eq 0 ] && [ -f "$VENV/pyvenv.cfg" ] || return 0
  local uid home python
  uid=$(sandbox_uid "$PYTHON")
  home=$(sed -n 's/^home *= *//p' "$VENV/pyvenv.cfg" | head -n 1)
  if [ -z "$home" ] || usable_by "$uid" "$home"; then return 0; fi
  python=$(readlink -f "$(command -v "$PYTHON")")
  if ! usable_by "$uid" "$(dirname "$python")"; then
    say "warning: the sandbox's learner (uid $uid, not root) can run neither the Python" \
      "$VENV was made from ($home) nor $PYTHON: notebooks will fail. Set LABKIT_PYTHON to" \
      "a Python that other users can run (Debian's /usr/bin/python3)."
    return 0
  fi
  say "$VENV was made from the Python in $home, which the sandbox's learner (uid $uid," \
    "not root) cannot read: making it again from $PYTHON"
  "$PYTHON" -m venv --clear "$VENV"
}

install_python() {
  if [ -x "$VENV/bin/python" ] && [ ! -w "$VENV" ]; then
    # made by `sudo ./run.sh install`, used here by an ordinary user
    say "$VENV belongs to another user: using it as it is (sudo ./run.sh install updates it)"
    return 0
  fi
  check_venv_home
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the Python environment in $VENV from $PYTHON"
    "$PYTHON" -m venv "$VENV"
  fi
  say "installing labkit and its Python packages"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
  "$VENV/bin/python" -m labkit.jupyter install >/dev/null
}

# As root, sandboxes run as an unprivileged uid: it must reach the course
# and its Python, and write in the course folder (where notebooks' commands
# run), which an ACL grants it without changing the files' owner.
grant_learner() {
  [ "$(id -u)" -eq 0 ] || return 0
  local uid
  uid=$(sandbox_uid "$VENV/bin/python")
  if ! usable_by "$uid" "$PWD/notebooks"; then
    say "warning: the sandbox's learner (uid $uid) is another user than root, and it cannot" \
      "read $PWD/notebooks: notebooks and terminals will fail. The course folder must be" \
      "readable by others: move the checkout out of a private folder such as /root (to" \
      "/srv/labkit, for example), or let others enter its parents (chmod o+x)."
  elif ! usable_by "$uid" "$VENV/bin/python"; then
    say "warning: the sandbox's learner (uid $uid) is another user than root, and it cannot" \
      "run $VENV/bin/python: notebooks and terminals will fail. The environment, and the" \
      "Python it was made from, must be readable by others (see LABKIT_VENV, LABKIT_PYTHON)."
  fi
  if setfacl -R -m "u:$uid:rwX" -m "d:u:$uid:rwX" notebooks 2>/dev/null; then
    say "notebooks/: the sandbox's learner (uid $uid) may write there (ACL)"
  else
    say "warning: could not give uid $uid write access to notebooks/ with setfacl (does" \
      "this file system support ACLs?): commands in notebooks cannot write files there"
  fi
}

install() {
  install_debs "${DEBS[@]}" "${TEST_DEBS[@]}" "${HUB_DEBS[@]}"; install_python; grant_learner
  install_proxy
}

# configurable-http-proxy in $VENV/node, where the classroom's configuration looks
install_proxy() {
  [ -x "$VENV/node/node_modules/.bin/configurable-http-proxy" ] && return 0
  # Debian's nodejs comes without npm; NodeSource's has it built in
  command -v npm >/dev/null || install_debs npm
  say "installing configurable-http-proxy (npm) into $VENV/node"
  npm install --silent --no-fund --no-audit --prefix "$VENV/node" configurable-http-proxy@5 >/dev/null
}

install_classroom() {
  EXTRAS=course,classroom; install_debs "${DEBS[@]}" "${HUB_DEBS[@]}"; install_python
  install_proxy
}

classroom() {
  [ "$(id -u)" -eq 0 ] || { say "the classroom runs as root (it makes a system user per learner)"; exit 1; }
  local url=${LABKIT_HUB_URL:-http://127.0.0.1:8000}
  cat >&2 <<EOF_BANNER
labkit classroom: JupyterHub at $url/
  1. Log in as ${LABKIT_ADMIN:-instructor}; the password you type the first time becomes yours.
  2. Admin (top bar) > Add Users: one name per line (lower case, such as alice).
  3. Each learner opens $url/ and logs in; their first password becomes theirs,
     and they get their own JupyterLab with the course and the labkit kernel.
  Idle servers stop after ${LABKIT_IDLE_TIMEOUT:-3600} s. State: ${LABKIT_HUB_STATE:-/var/lib/labkit-hub}.
EOF_BANNER
  exec "$VENV/bin/jupyterhub" -f "$HUB_CONFIG" "$@"
}
install_course() { EXTRAS=course; install_debs "${DEBS[@]}"; install_python; grant_learner; }

start() {
  "$VENV/bin/labkit" doctor -q || true
  # Started by root, JupyterLab runs as root: only root can make sandboxes
  # where user namespaces are forbidden to ordinary users. It runs no
  # learner code (kernels and terminals are sandboxed, see the installed
  # settings) and its file browser stays in notebooks/. It starts from
  # here, a folder learners cannot write, not from notebooks/.
  local flags=(--notebook-dir=notebooks --MappingKernelManager.default_kernel_name=labkit)
  [ "$(id -u)" -eq 0 ] && flags+=(--allow-root)
  # loopback only, unless told otherwise (the container image listens on all)
  case " $* " in *" --ip="*|*" --ip "*) ;; *) flags+=(--ip=127.0.0.1) ;; esac
  exec "$VENV/bin/jupyter" lab "${flags[@]}" "$@"
}

case "${1:-}" in
  install)
    if [ "${2:-}" = course ]; then install_course; else install; fi ;;
  course)
    shift; install_course; start "$@" ;;
  start)
    shift; start "$@" ;;
  classroom)
    shift; install_classroom; classroom "$@" ;;
  test)
    shift; install
    say "ruff"
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    say "pytest (tests, doctests, notebooks under nbval)"
    exec "$VENV/bin/python" -m pytest --nbval --nbval-sanitize-with notebooks/nbval-sanitize.cfg \
      tests labkit notebooks "$@" ;;
  *)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
