"""labkit's classroom on one machine: one JupyterHub, one system user and one lab per learner.

Started by ``./run.sh classroom`` (as root), which installs JupyterHub, the
FirstUse authenticator and the idle culler from PyPI and
configurable-http-proxy from the npm registry, then runs
``jupyterhub -f deploy/jupyterhub/jupyterhub_config.py``.

* **Who logs in.** The instructor (``LABKIT_ADMIN``, default
  ``instructor``) and the learners the instructor adds on the admin page
  (Admin, Add Users). Each chooses a password at the first login
  (FirstUseAuthenticator); nobody else can sign up.
* **What a learner gets.** A system user of the same name, made at the
  first start (group ``labkit-learners``, home under the hub's state
  folder, mode 700), a copy of the course's notebooks there, and their own
  JupyterLab (``jupyterhub-singleuser`` of labkit's environment) running as
  that user, with the ``labkit`` kernel as default. Every notebook's kernel
  and every terminal is a labkit sandbox, as with ``./run.sh course``: the
  learner is root in their labs and an ordinary user on the machine.
  Kernels listen on Unix sockets in the learner's home, not on ports of
  127.0.0.1 (see ``_prepare_now``).
* **Idle servers** are stopped by jupyterhub-idle-culler after
  ``LABKIT_IDLE_TIMEOUT`` seconds (default 3600). Stopping a server ends its
  kernels, and with each kernel its sandbox and everything in it.

Environment: ``LABKIT_HUB_URL`` (default ``http://127.0.0.1:8000``),
``LABKIT_HUB_STATE`` (the hub's database, secrets, password file and the
learners' homes; default ``/var/lib/labkit-hub``), ``LABKIT_ADMIN``,
``LABKIT_IDLE_TIMEOUT``, ``LABKIT_VENV`` (default the checkout's
``.venv``), and ``LABKIT_HUB_API_TOKEN``: if set, a service
``labkit-admin`` with that token may manage users and servers and use the
learners' servers (what ``bench/classroom.py`` and the tests use).
"""

# ruff: noqa: F821 - `c` is the configuration object JupyterHub passes in

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import shutil
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.abspath(os.environ.get("LABKIT_VENV", os.path.join(ROOT, ".venv")))
STATE = os.path.abspath(os.environ.get("LABKIT_HUB_STATE", "/var/lib/labkit-hub"))
HOMES = os.path.join(STATE, "home")
ADMIN = os.environ.get("LABKIT_ADMIN", "instructor")
GROUP = "labkit-learners"
IDLE = int(os.environ.get("LABKIT_IDLE_TIMEOUT", "3600"))

os.makedirs(HOMES, mode=0o755, exist_ok=True)
os.chmod(STATE, 0o755)  # learners reach their homes through it; its files stay root's

# -- the hub and its proxy -----------------------------------------------------------
c.JupyterHub.bind_url = os.environ.get("LABKIT_HUB_URL", "http://127.0.0.1:8000")
# the hub's own API and the proxy's on the next two ports, so that hubs can sit side by side
_port = int(c.JupyterHub.bind_url.rstrip("/").rsplit(":", 1)[1].split("/")[0])
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{_port + 1}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{_port + 2}"
c.JupyterHub.db_url = f"sqlite:///{STATE}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = os.path.join(STATE, "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = os.path.join(STATE, "proxy.pid")
_proxy = os.path.join(VENV, "node", "node_modules", ".bin", "configurable-http-proxy")
if os.path.exists(_proxy):
    c.ConfigurableHTTPProxy.command = [_proxy]

# -- who logs in -----------------------------------------------------------------------
c.JupyterHub.authenticator_class = "firstuseauthenticator.FirstUseAuthenticator"
c.FirstUseAuthenticator.create_users = False  # only users the instructor added
c.FirstUseAuthenticator.dbm_path = os.path.join(STATE, "passwords.dbm")
c.FirstUseAuthenticator.min_password_length = 8
c.Authenticator.admin_users = {ADMIN}
c.Authenticator.allowed_users = {ADMIN}
c.Authenticator.allow_existing_users = True  # those added on the admin page may log in
# system user names: lower case letters, digits, - and _, starting with a letter
c.Authenticator.username_pattern = r"^[a-z][a-z0-9_-]{0,30}$"


# -- one system user and one JupyterLab per learner ----------------------------------
#: one groupadd/useradd at a time: hooks run in threads, and two learners starting at
#: once both found the group missing, and the second groupadd failed (a 500 to the learner)
_ACCOUNTS = threading.Lock()


def _system_user(name: str) -> pwd.struct_passwd:
    """The learner's system user, made on first use; never one labkit did not make."""
    with _ACCOUNTS:
        return _system_user_now(name)


def _system_user_now(name: str) -> pwd.struct_passwd:
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", GROUP], check=True)
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        home = os.path.join(HOMES, name)
        subprocess.run(
            ["useradd", "--gid", GROUP, "--home-dir", home, "--create-home"]
            + ["--shell", "/bin/bash", "--comment", "labkit learner", name],
            check=True,
        )
        os.chmod(home, 0o700)
        return pwd.getpwnam(name)
    if user.pw_gid != grp.getgrnam(GROUP).gr_gid:
        raise ValueError(
            f"{name!r} is an account of this machine that labkit did not make "
            f"(its group is not {GROUP}); give the learner another name"
        )
    return user


#: a Unix socket's longest path (sun_path: 108 bytes with the final NUL)
_SUN_PATH = 107
#: what a kernel's socket adds to the runtime folder
_KERNEL_SOCKET = len("/kernel-00000000-0000-0000-0000-000000000000-ipc-99")
_IPC = "--KernelManager.transport=ipc"


async def _prepare(spawner) -> None:  # type: ignore[no-untyped-def]
    """pre_spawn_hook, in a thread: useradd and the copy would stall the hub's event loop."""
    await asyncio.to_thread(_prepare_now, spawner)


def _prepare_now(spawner) -> None:  # type: ignore[no-untyped-def]
    """The system user, the course's notebooks in its home, and kernels on Unix sockets.

    A server's kernels listen on five TCP ports of 127.0.0.1 by default,
    which the server picks as free just before the kernel starts. Thirty
    servers doing so at the same moment sometimes pick the same port: one
    kernel then dies, and a server talks to another learner's kernel (its
    messages are refused, their keys differ). Unix sockets in the learner's
    home (``transport=ipc``) cannot collide, and only the learner can reach
    them. Their paths must fit a socket address, hence a short runtime folder.
    """
    user = _system_user(spawner.user.name)
    # not ~/labkit: a folder of that name beside a notebook would shadow `import labkit`
    course = os.path.join(user.pw_dir, "course")
    if not os.path.isdir(course):
        shutil.copytree(os.path.join(ROOT, "notebooks"), course)
        for folder, dirs, files in os.walk(course):
            for entry in [folder, *(os.path.join(folder, f) for f in dirs + files)]:
                os.chown(entry, user.pw_uid, user.pw_gid)
    runtime = os.path.join(user.pw_dir, ".rt")
    if len(runtime) + _KERNEL_SOCKET <= _SUN_PATH and _IPC not in spawner.args:
        spawner.environment = {**spawner.environment, "JUPYTER_RUNTIME_DIR": runtime}
        spawner.args = [*spawner.args, _IPC]


c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.Spawner.pre_spawn_hook = _prepare
c.Spawner.cmd = [os.path.join(VENV, "bin", "jupyterhub-singleuser")]
c.Spawner.notebook_dir = "~/course"
c.Spawner.default_url = "/lab"
c.Spawner.args = [
    "--MappingKernelManager.default_kernel_name=labkit",
    # how long a kernel may take to answer its first request before JupyterLab
    # gives up on it (60 s by default): as long as a server may take to start
    "--MappingKernelManager.kernel_info_timeout=300",
]
c.Spawner.env_keep = ["LANG", "LC_ALL"]
c.Spawner.environment = {
    "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    # how often a learner's server tells the hub it is in use (the culler reads it)
    "JUPYTERHUB_ACTIVITY_INTERVAL": str(max(5, min(300, IDLE // 4))),
}
# A JupyterLab costs about 1.7 s of CPU to start; a class that logs in in the
# same minute on a small machine queues for it (thirty at once on two cores:
# the last answered after about 100 s, bench/classroom.py). The learner sees
# the hub's progress page meanwhile.
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 300

# -- idle servers are stopped --------------------------------------------------------
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={IDLE}",
            f"--cull-every={max(5, min(300, IDLE // 4))}",
        ],
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
if os.environ.get("LABKIT_HUB_API_TOKEN"):
    c.JupyterHub.services.append(
        {"name": "labkit-admin", "api_token": os.environ["LABKIT_HUB_API_TOKEN"]}
    )
    c.JupyterHub.load_roles.append(
        {
            "name": "labkit-admin",
            "scopes": ["admin:users", "admin:servers", "access:servers", "list:users"],
            "services": ["labkit-admin"],
        }
    )
