"""The classroom on Kubernetes: the learner's pod that deploy/kubernetes asks for.

No cluster runs here. The Helm values files of ``deploy/kubernetes`` are
merged as Helm merges them, turned into KubeSpawner's settings the way Zero to
JupyterHub's hub turns its values into them, and KubeSpawner builds the pod
manifest it would send (``get_pod_manifest``). Its constructor loads a kube
config, so the tests point ``KUBECONFIG`` at a fake one; nothing connects
anywhere.

What is checked is what the sandbox needs in a pod (README's "Run it in a
container", deploy/kubernetes/README.md): a user namespace of its own
(``hostUsers: false``), an unmasked ``/proc``, seccomp unconfined, the learner
as uid 1000 with no capability and no privilege escalation; the course image,
JupyterHub's single-user server from the course's environment with the
``labkit`` kernel by default; the resources per learner; and for the last
resort, a privileged pod that Kubernetes would accept.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import traceback
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")
kubespawner = pytest.importorskip("kubespawner")
from jupyterhub.objects import Hub  # noqa: E402 (after the skip)
from kubernetes_asyncio.config import kube_config  # noqa: E402
from traitlets.config import Config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
USERNS = ("values.yaml",)  # option (a)
PRIVILEGED = ("values.yaml", "values-privileged.yaml")  # option (c), layered on (a)

# One cluster, one user and one context that lead nowhere: enough for the
# Kubernetes client to load a configuration.
FAKE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: none
  cluster: {server: "https://127.0.0.1:9"}
users:
- name: none
  user: {token: none}
contexts:
- name: none
  context: {cluster: none, user: none}
current-context: none
"""

# -- Helm's values, and what Zero to JupyterHub's hub makes of them ------------------
#
# The hub of the chart reads its values in jupyterhub/files/hub/jupyterhub_config.py
# (jupyterhub/zero-to-jupyterhub-k8s, read at commit cbdd540, the kubernetes_asyncio
# era). Of it, this file follows only what shapes a learner's pod in these values:
# its table of KubeSpawner traits and keys under `singleuser.` (the rows below),
# the image as `name:tag`, `singleuser.allowPrivilegeEscalation` set even when
# null, `singleuser.cmd` and `singleuser.defaultUrl` on Spawner, and last,
# `hub.config.<Class>` updating that class's configuration.
SINGLEUSER_TRAITS = {
    "uid": "uid",
    "fs_gid": "fsGid",
    "mem_limit": "memory.limit",
    "mem_guarantee": "memory.guarantee",
    "cpu_limit": "cpu.limit",
    "cpu_guarantee": "cpu.guarantee",
    "environment": "extraEnv",
    "extra_pod_config": "extraPodConfig",
}
# the keys of `singleuser` the hub reads outside that table
SINGLEUSER_OTHERS = {"image", "allowPrivilegeEscalation", "cmd", "defaultUrl"}
# keys that make other objects than the pod's container: `storage.type: none`
# adds no volume; `networkPolicy` is a NetworkPolicy of the chart's templates
SINGLEUSER_NOT_IN_POD = {"storage", "networkPolicy"}
# keys the chart knows (its schema.yaml), for the parts not in the pod
CHART_KEYS = {
    "cull": {
        "enabled",
        "users",
        "adminUsers",
        "removeNamedServers",
        "timeout",
        "every",
        "concurrency",
        "maxAge",
    },
    "singleuser.storage.type": {"none", "static", "dynamic"},
    "singleuser.networkPolicy.egressAllowRules": {
        "cloudMetadataServer",
        "dnsPortsCloudMetadataServer",
        "dnsPortsKubeSystemNamespace",
        "dnsPortsPrivateIPs",
        "nonPrivateIPs",
        "privateIPs",
    },
}


def helm_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Values files merged as Helm merges its ``--values`` files: maps key by key, others replaced.

    A null stays a null: Helm then removes the key where the chart has a
    default for it, and keeps the null elsewhere; either way the hub reads
    None, and the Kubernetes API takes a null as unset.

    >>> helm_merge({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": None}, "d": [2]})
    {'a': {'b': None, 'c': 2}, 'd': [2]}
    """
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def get(values: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """The value at a dotted key, as z2jh's ``get_config`` reads it.

    >>> get({"a": {"b": 1}}, "a.b"), get({"a": {}}, "a.b", 0)
    (1, 0)
    """
    for part in dotted.split("."):
        if not isinstance(values, dict) or part not in values:
            return default
        values = values[part]
    return values


@functools.cache
def values(*names: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name in names:
        merged = helm_merge(merged, yaml.safe_load((DEPLOY / name).read_text()))
    return merged


def hub_config(v: dict[str, Any]) -> Config:
    """The traitlets configuration z2jh's hub makes of the values, for a learner's pod."""
    c = Config()
    for trait, key in SINGLEUSER_TRAITS.items():
        value = get(v, "singleuser." + key)
        if value is not None:
            c.KubeSpawner[trait] = value
    image = get(v, "singleuser.image.name")
    if image:
        tag = get(v, "singleuser.image.tag")
        c.KubeSpawner.image = f"{image}:{tag}" if tag else image
    c.KubeSpawner.allow_privilege_escalation = get(v, "singleuser.allowPrivilegeEscalation")
    if "cmd" in v.get("singleuser", {}):
        c.Spawner.cmd = v["singleuser"]["cmd"]
    if get(v, "singleuser.defaultUrl") is not None:
        c.Spawner.default_url = get(v, "singleuser.defaultUrl")
    for cls, settings in get(v, "hub.config", {}).items():
        c[cls].update(settings)
    return c


@pytest.fixture(scope="module", autouse=True)
def fake_kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(FAKE_KUBECONFIG)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBECONFIG", str(path))
        # the Kubernetes client read KUBECONFIG when kubespawner imported it
        mp.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
        # not the in-cluster configuration, should these tests run in a pod
        mp.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        mp.delenv("KUBERNETES_SERVICE_PORT", raising=False)
        yield path


@functools.cache
def manifest(*names: str) -> dict[str, Any]:
    """The pod KubeSpawner would create for a learner with these values files, as JSON."""

    async def build() -> dict[str, Any]:
        spawner = kubespawner.KubeSpawner(_mock=True, config=hub_config(values(*names)), hub=Hub())
        pod = await spawner.get_pod_manifest()
        return spawner.api.api_client.sanitize_for_serialization(pod)

    # In a child: the Kubernetes client's DNS resolver (pycares) leaves a thread
    # running, and the suite's sandboxed tests fork only from a single thread.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        code = 0
        try:
            with os.fdopen(w, "w") as out:
                json.dump(asyncio.run(build()), out)
        except BaseException:  # noqa: BLE001 - the parent reports it
            traceback.print_exc()
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0 and text, "building the pod manifest failed (run the test alone to see why)"
    return json.loads(text)


def notebook(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "notebook"]
    return container


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container["env"]}


def image_user() -> tuple[str, int]:
    """The course image's working folder and its learner's uid, from deploy/Containerfile."""
    text = CONTAINERFILE.read_text()
    workdir = re.search(r"^WORKDIR\s+(\S+)", text, re.M)
    uid = re.search(r"useradd\b.*--uid\s+(\d+).*\blearner\b", text)
    assert workdir and uid, "deploy/Containerfile: no WORKDIR, or no useradd of learner"
    return workdir.group(1), int(uid.group(1))


# -- option (a): a user-namespaced pod ------------------------------------------------


def test_user_namespaced_pod_with_what_the_sandbox_needs() -> None:
    pod = manifest(*USERNS)
    assert pod["spec"].get("hostUsers") is False
    sc = notebook(pod)["securityContext"]
    assert sc["procMount"] == "Unmasked"
    assert sc["seccompProfile"] == {"type": "Unconfined"}
    assert sc["appArmorProfile"] == {"type": "Unconfined"}
    _, uid = image_user()
    assert sc["runAsUser"] == uid == 1000
    assert sc["runAsGroup"] == 1000
    assert pod["spec"]["securityContext"]["fsGroup"] == 1000
    assert sc["allowPrivilegeEscalation"] is False
    assert not sc.get("privileged")
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_no_extra_container_and_no_service_account_token() -> None:
    pod = manifest(*USERNS)
    assert [c["name"] for c in pod["spec"]["containers"]] == ["notebook"]
    assert not pod["spec"].get("initContainers")
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_course_image_runs_jupyterhub_singleuser_from_its_environment() -> None:
    container = notebook(manifest(*USERNS))
    assert container["image"] == "registry.example.org/labkit:latest"
    workdir, _ = image_user()
    # args, not command: the image's entrypoint (tini) stays PID 1
    assert "command" not in container
    assert container["args"][0] == f"{workdir}/.venv/bin/jupyterhub-singleuser"
    assert "--MappingKernelManager.default_kernel_name=labkit" in container["args"][1:]
    variables = env(container)
    assert variables["JUPYTERHUB_DEFAULT_URL"] == "/lab"
    assert variables["JUPYTERHUB_ROOT_DIR"] == f"{workdir}/notebooks"
    assert variables["PATH"].split(":")[0] == f"{workdir}/.venv/bin"


def test_resources_per_learner() -> None:
    resources = notebook(manifest(*USERNS))["resources"]
    assert resources["requests"] == {"cpu": 0.1, "memory": 256 * 2**20}
    assert resources["limits"] == {"cpu": 1, "memory": 2**30}


# -- option (c): privileged, the last resort ------------------------------------------


def test_privileged_pod_keeps_the_learner_and_the_course() -> None:
    pod = manifest(*PRIVILEGED)
    container = notebook(pod)
    sc = container["securityContext"]
    assert sc["privileged"] is True
    assert sc["allowPrivilegeEscalation"] is True
    assert not sc.get("capabilities")
    # unset (a null is unset for the API)
    assert pod["spec"].get("hostUsers") is None
    assert sc.get("procMount") is None
    assert sc["runAsUser"] == 1000
    assert sc["seccompProfile"] == {"type": "Unconfined"}
    assert container["image"] == notebook(manifest(*USERNS))["image"]
    assert container["args"] == notebook(manifest(*USERNS))["args"]
    assert container["resources"] == notebook(manifest(*USERNS))["resources"]


# -- both: what the API server would refuse --------------------------------------------


@pytest.mark.parametrize("names", [USERNS, PRIVILEGED], ids=["userns", "privileged"])
def test_kubernetes_would_accept_the_pod(names: tuple[str, ...]) -> None:
    """Pod validation rules of Kubernetes that these values come near (README.md's sources)."""
    pod = manifest(*names)
    sc = notebook(pod)["securityContext"]
    host_users = pod["spec"].get("hostUsers")  # unset: the node's user namespace
    if sc.get("procMount") == "Unmasked":
        assert host_users is False, "`hostUsers` must be false to use `Unmasked`"
    if sc.get("privileged"):
        assert sc.get("allowPrivilegeEscalation") is not False, (
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"
        )
    if host_users is False:
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod["spec"].get(field), f"{field} with hostUsers false"


# -- the values themselves --------------------------------------------------------------


@pytest.mark.parametrize("names", [USERNS, PRIVILEGED], ids=["userns", "privileged"])
def test_every_singleuser_key_is_mapped_or_outside_the_pod(names: tuple[str, ...]) -> None:
    mapped = {key.split(".")[0] for key in SINGLEUSER_TRAITS.values()} | SINGLEUSER_OTHERS
    unmapped = set(values(*names)["singleuser"]) - mapped - SINGLEUSER_NOT_IN_POD
    assert not unmapped, f"map these as z2jh's hub does, or say why not: {unmapped}"


def test_chart_keys_outside_the_pod_exist() -> None:
    v = values(*USERNS)
    assert set(v["cull"]) <= CHART_KEYS["cull"]
    assert v["cull"]["enabled"] is True
    assert get(v, "singleuser.storage.type") in CHART_KEYS["singleuser.storage.type"]
    rules = get(v, "singleuser.networkPolicy.egressAllowRules")
    assert set(rules) <= CHART_KEYS["singleuser.networkPolicy.egressAllowRules"]


def _configurable(cls_name: str) -> type:
    if cls_name == "FirstUseAuthenticator":
        return pytest.importorskip("firstuseauthenticator").FirstUseAuthenticator
    from jupyterhub.app import JupyterHub
    from jupyterhub.auth import Authenticator
    from jupyterhub.spawner import Spawner

    classes = {
        "JupyterHub": JupyterHub,
        "Authenticator": Authenticator,
        "Spawner": Spawner,
        "KubeSpawner": kubespawner.KubeSpawner,
    }
    assert cls_name in classes, f"hub.config.{cls_name}: a class this test does not know"
    return classes[cls_name]


@pytest.mark.parametrize("names", [USERNS, PRIVILEGED], ids=["userns", "privileged"])
def test_hub_config_names_real_settings(names: tuple[str, ...]) -> None:
    """traitlets ignores an unknown setting with a warning: a typo would go unseen."""
    for cls_name, settings in get(values(*names), "hub.config").items():
        known = _configurable(cls_name).class_trait_names(config=True)
        assert set(settings) <= set(known), f"hub.config.{cls_name}: {set(settings) - set(known)}"
    # the name the hub finds its authenticator by, and the class the settings are for
    authenticator = get(values(*names), "hub.config.JupyterHub.authenticator_class")
    found = entry_points(group="jupyterhub.authenticators", name=authenticator)
    assert found, f"no installed authenticator is called {authenticator!r}"
    assert found[authenticator].load().__name__ in get(values(*names), "hub.config")
