"""Run one container of a rendered pod spec with Docker, the way a kubelet would run it.

What is carried over from the manifest: the command and args (with `$(VAR)` expanded from the
container's environment), `env` and `envFrom` ConfigMaps and Secrets, the user and group, the read-only
root filesystem, dropped capabilities, no privilege escalation, emptyDirs as tmpfs mounts,
claims and secrets as host folders (with `subPath`, `items` and read-only mounts), memory and
CPU limits, and the container ports, published on 127.0.0.1. What a kubelet adds by itself
(JOB_COMPLETION_INDEX for an Indexed Job, downward-API fields) the test passes in.

Anything in a pod spec this module does not know how to carry over fails the test, so the
manifests cannot grow a setting that the container tests silently ignore.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .conftest import docker_support

# Pod and container fields that change nothing a container sees here: scheduling, probes
# (tested through their URLs), metadata, Kubernetes-only behaviour.
IGNORED_POD_FIELDS = {
    "containers",
    "volumes",
    "securityContext",
    "serviceAccountName",
    "enableServiceLinks",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "topologySpreadConstraints",
    "minReplicas",
    "maxReplicas",
    "scaleMetric",
    "scaleTarget",
    "labels",
    "annotations",
}
IGNORED_CONTAINER_FIELDS = {
    "name",
    "image",
    "command",
    "args",
    "env",
    "envFrom",
    "ports",
    "resources",
    "securityContext",
    "volumeMounts",
    "startupProbe",
    "livenessProbe",
    "readinessProbe",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
}
# Security settings and mount fields carried over (or, for seccomp's RuntimeDefault and
# runAsNonRoot, what Docker does anyway); any other key fails the test.
SECURITY_FIELDS = {
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "fsGroup",
    "fsGroupChangePolicy",
    "seccompProfile",
    "readOnlyRootFilesystem",
    "allowPrivilegeEscalation",
    "capabilities",
}
MOUNT_FIELDS = {"name", "mountPath", "subPath", "readOnly"}
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}


@dataclass
class Cluster:
    """What the pod's references resolve to: the overlay's objects, and host folders that
    stand in for claims and secrets."""

    objects: list[dict[str, Any]]
    root: Path
    claims: dict[str, Path] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)

    def config_map(self, name: str) -> dict[str, str]:
        found = [
            o for o in self.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name
        ]
        assert found, f"ConfigMap {name} is not in the overlay"
        return dict(found[0].get("data", {}))


@dataclass
class PodContainer:
    """The Docker options of one container, and how to reach its ports and probes."""

    options: dict[str, Any]
    spec: dict[str, Any]
    host_ports: dict[str, int]  # port name or number (as text) -> port on 127.0.0.1

    def probe_url(self, probe: str) -> str:
        action = self.spec[probe]["httpGet"]
        return f"http://127.0.0.1:{self.host_ports[str(action['port'])]}{action['path']}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{next(iter(self.host_ports.values()))}{path}"


def quantity(text: str | int) -> float:
    match = re.fullmatch(r"([\d.]+)(m|Ki|Mi|Gi|k|M|G)?", str(text))
    assert match, f"not a Kubernetes quantity: {text!r}"
    number, unit = float(match.group(1)), match.group(2)
    if unit == "m":
        return number / 1000
    return number * UNITS.get(unit or "", 1)


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion; a reference to an unknown variable stays as written."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def environment(spec: dict[str, Any], cluster: Cluster, given: dict[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        assert set(source) <= {"configMapRef", "secretRef"} and len(source) == 1, (
            f"envFrom {source} is not supported here"
        )
        if "configMapRef" in source:
            env.update(cluster.config_map(source["configMapRef"]["name"]))
            continue
        name = source["secretRef"]["name"]
        assert name in cluster.secrets or source["secretRef"].get("optional") is True, (
            f"the test must give secret {name}"
        )
        env.update(cluster.secrets.get(name, {}))
    for variable in spec.get("env", []):
        name = variable["name"]
        if "value" in variable:
            env[name] = expand(str(variable["value"]), env)
        else:
            assert name in given, (
                f"{name} comes from {variable['valueFrom']}: the test must give it"
            )
    env.update(given)
    return env


def docker_options(
    pod: dict[str, Any],
    container_name: str,
    cluster: Cluster,
    image: str,
    given_env: dict[str, str] | None = None,
) -> PodContainer:
    unknown = set(pod) - IGNORED_POD_FIELDS
    assert not unknown, f"pod fields this test cannot carry over: {sorted(unknown)}"
    [spec] = [c for c in pod["containers"] if c["name"] == container_name]
    unknown = set(spec) - IGNORED_CONTAINER_FIELDS
    assert not unknown, f"container fields this test cannot carry over: {sorted(unknown)}"
    env = environment(spec, cluster, given_env or {})
    security = {**pod.get("securityContext", {}), **spec.get("securityContext", {})}
    unknown = set(security) - SECURITY_FIELDS
    assert not unknown, f"security settings this test cannot carry over: {sorted(unknown)}"
    assert set(security.get("capabilities", {})) <= {"drop"}, "only dropping capabilities"
    assert security.get("seccompProfile", {"type": "RuntimeDefault"}) == {"type": "RuntimeDefault"}
    assert security.get("runAsNonRoot") is not True or security["runAsUser"] != 0
    options: dict[str, Any] = {
        "image": image,
        "environment": env,
        "detach": True,
        "user": f"{security['runAsUser']}:{security.get('runAsGroup', 0)}",
        "read_only": bool(security.get("readOnlyRootFilesystem")),
        "cap_drop": security.get("capabilities", {}).get("drop", []),
        "security_opt": (
            ["no-new-privileges"] if security.get("allowPrivilegeEscalation") is False else []
        ),
    }
    if "fsGroup" in security:
        options["group_add"] = [str(security["fsGroup"])]
    if "command" in spec:
        options["entrypoint"] = [expand(part, env) for part in spec["command"]]
    if "args" in spec:
        options["command"] = [expand(part, env) for part in spec["args"]]
    limits = spec.get("resources", {}).get("limits", {})
    if "memory" in limits:
        options["mem_limit"] = int(quantity(limits["memory"]))
    if "cpu" in limits:
        options["nano_cpus"] = int(quantity(limits["cpu"]) * 1e9)
    host_ports: dict[str, int] = {}
    published: dict[str, tuple[str, int]] = {}
    for port in spec.get("ports", []):
        host = docker_support.free_port()
        published[f"{port['containerPort']}/tcp"] = ("127.0.0.1", host)
        host_ports[str(port["containerPort"])] = host
        if "name" in port:
            host_ports[port["name"]] = host
    if published:
        options["ports"] = published
    options["tmpfs"], options["volumes"] = mounts(pod, spec, cluster)
    return PodContainer(options, spec, host_ports)


def mounts(
    pod: dict[str, Any], spec: dict[str, Any], cluster: Cluster
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    tmpfs: dict[str, str] = {}
    binds: dict[str, dict[str, str]] = {}
    for mount in spec.get("volumeMounts", []):
        unknown = set(mount) - MOUNT_FIELDS
        assert not unknown, f"mount fields this test cannot carry over: {sorted(unknown)}"
        volume = volumes[mount["name"]]
        target = mount["mountPath"]
        read_only = bool(mount.get("readOnly"))
        if "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit")
            tmpfs[target] = f"size={int(quantity(size))}" if size else ""
            continue
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]
            assert claim["claimName"] in cluster.claims, f"no folder for claim {claim['claimName']}"
            host = cluster.claims[claim["claimName"]]
            read_only = read_only or bool(claim.get("readOnly"))
        elif "secret" in volume:
            host = secret_folder(volume["secret"], cluster)
        elif "configMap" in volume:
            host = config_map_folder(volume["configMap"], cluster)
        else:
            raise AssertionError(f"volume {volume} is not supported here")
        if "subPath" in mount:
            host = host / mount["subPath"]
            host.mkdir(exist_ok=True)  # as a kubelet creates a missing subPath
            host.chmod(0o777)
        binds[str(host)] = {"bind": target, "mode": "ro" if read_only else "rw"}
    return tmpfs, binds


def secret_folder(secret: dict[str, Any], cluster: Cluster) -> Path:
    name = secret["secretName"]
    assert name in cluster.secrets, f"the test must give secret {name}"
    folder = cluster.root / "secrets" / name
    folder.mkdir(parents=True, exist_ok=True)
    data = cluster.secrets[name]
    items = secret.get("items") or [{"key": key, "path": key} for key in data]
    for item in items:
        path = folder / item["path"]
        path.write_text(data[item["key"]])
        path.chmod(0o644)
    return folder


def config_map_folder(source: dict[str, Any], cluster: Cluster) -> Path:
    """A ConfigMap of the overlay, as the files a kubelet mounts (one per key)."""
    name = source["name"]
    data = cluster.config_map(name)
    folder = cluster.root / "configmaps" / name
    folder.mkdir(parents=True, exist_ok=True)
    items = source.get("items") or [{"key": key, "path": key} for key in data]
    for item in items:
        path = folder / item["path"]
        path.write_text(data[item["key"]])
        path.chmod(0o644)
    return folder
