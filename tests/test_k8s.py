"""The Kubernetes manifests (deploy/k8s): valid for the cluster, configured with real settings,
probing real endpoints, and shutting down in the right order. No cluster here: the schemas are
kubernetes-validate's (offline), and the endpoints are the running service's."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from app.config import Settings
from tests.conftest import ROOT

K8S = ROOT / "deploy/k8s"
REDIS = K8S / "redis"  # the optional component: a Redis for resumable answers
KUBERNETES_VERSION = "1.33.0"


def manifests(*, with_redis: bool = False) -> list[dict[str, Any]]:
    """The base's manifests, or those of an overlay that adds the optional Redis component."""
    return copy.deepcopy(_manifests(with_redis))


@cache
def _manifests(with_redis: bool) -> list[dict[str, Any]]:
    """What `kubectl apply -k` applies: kubectl's kustomize output where kubectl is installed,
    else the kustomization's resources as written (and the component's, its ConfigMap patch merged)."""
    if kubectl := shutil.which("kubectl"):
        with tempfile.TemporaryDirectory() as overlay:
            # The component is used as an operator uses it: from an overlay of their own.
            kustomization = {"resources": [os.path.relpath(K8S, overlay)]}
            if with_redis:
                kustomization["components"] = [os.path.relpath(REDIS, overlay)]
            (Path(overlay) / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
            built = subprocess.run(
                [kubectl, "kustomize", overlay], capture_output=True, text=True, check=True
            )
        return list(yaml.safe_load_all(built.stdout))
    docs = _resources(K8S)
    if with_redis:
        component = yaml.safe_load((REDIS / "kustomization.yaml").read_text())
        docs += _resources(REDIS)
        for patch in component["patches"]:
            (patched,) = yaml.safe_load_all((REDIS / patch["path"]).read_text())
            assert patched["kind"] == "ConfigMap", "this fallback merges ConfigMap patches only"
            (target,) = [doc for doc in docs if doc["kind"] == "ConfigMap"]
            target["data"].update(patched["data"])
    return docs


def _resources(root: Path) -> list[dict[str, Any]]:
    """A kustomization's resources with its `labels` added (as kustomize does: on each resource,
    its pod template and, with includeSelectors, its selector)."""
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    docs = [
        doc for name in kustomization["resources"] for doc in yaml.safe_load_all((root / name).read_text())
    ]
    for labels in kustomization.get("labels", []):
        for doc in docs:
            spec = doc.get("spec", {})
            targets = [doc["metadata"].setdefault("labels", {})]
            if "template" in spec:
                targets.append(spec["template"]["metadata"].setdefault("labels", {}))
            if labels.get("includeSelectors") and "selector" in spec:
                targets.append(
                    spec["selector"] if doc["kind"] == "Service" else spec["selector"]["matchLabels"]
                )
            for target in targets:
                target.update(labels["pairs"])
    return docs


def of_kind(kind: str, *, with_redis: bool = False) -> dict[str, Any]:
    """The service's own resource of that kind (the Redis component's are named otherwise)."""
    (resource,) = [
        doc
        for doc in manifests(with_redis=with_redis)
        if doc["kind"] == kind and doc["metadata"]["name"] == "chat-service"
    ]
    return resource


def container(*, with_redis: bool = False) -> dict[str, Any]:
    (only,) = of_kind("Deployment", with_redis=with_redis)["spec"]["template"]["spec"]["containers"]
    return only


def environment(*, with_redis: bool = False) -> dict[str, str | None]:
    """Every variable the pod gets: the ConfigMap's, and the container's own (None: from a Secret)."""
    env: dict[str, str | None] = dict(of_kind("ConfigMap", with_redis=with_redis)["data"])
    env.update({item["name"]: item.get("value") for item in container(with_redis=with_redis)["env"]})
    return env


def test_every_manifest_validates_against_the_kubernetes_schemas_in_strict_mode() -> None:
    kinds = set()
    for resource in manifests():
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        kinds.add(resource["kind"])
    assert kinds == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


def test_the_strict_validation_catches_a_misspelt_field() -> None:
    deployment = of_kind("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("with_redis", [False, True], ids=["base", "with-redis"])
def test_every_variable_set_is_a_real_setting_and_the_key_comes_from_a_secret(
    with_redis: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {f"CHAT_{name.upper()}" for name in Settings.model_fields} | {
        alias.upper()
        for info in Settings.model_fields.values()
        if info.validation_alias is not None
        for alias in getattr(info.validation_alias, "choices", [info.validation_alias])
        if isinstance(alias, str)
    }
    gunicorn = set(re.findall(r"os\.environ\.get\(\"(\w+)\"", (ROOT / "gunicorn.conf.py").read_text()))
    env = environment(with_redis=with_redis)

    assert set(env) <= settings | gunicorn, set(env) - settings - gunicorn
    assert env["ANTHROPIC_API_KEY"] is None  # no literal key anywhere
    (key,) = [item for item in container(with_redis=with_redis)["env"] if item["name"] == "ANTHROPIC_API_KEY"]
    assert set(key["valueFrom"]) == {"secretKeyRef"}
    # The values are valid, read as the pod reads them: from its environment.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "any")
    for name, value in env.items():
        if name in settings and value:
            monkeypatch.setenv(name, value)
    configured = Settings(_env_file=None)
    assert (configured.redis_url is not None) == with_redis


def test_shutdown_fits_in_the_grace_period_in_the_right_order() -> None:
    spec = of_kind("Deployment")["spec"]["template"]["spec"]
    env = environment()
    pause = container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    streams_grace = float(env.get("CHAT_SHUTDOWN_GRACE") or Settings.model_fields["shutdown_grace"].default)
    gunicorn_grace = float(env.get("GRACEFUL_TIMEOUT") or 60)

    # The kubelet counts the preStop pause in the grace period, then sends SIGTERM: streams get
    # their grace, then gunicorn stops waiting for workers, then (last) the kubelet kills.
    assert streams_grace < gunicorn_grace
    assert pause + gunicorn_grace < spec["terminationGracePeriodSeconds"]


def test_the_pod_is_locked_down_and_writes_only_to_empty_dirs() -> None:
    spec = of_kind("Deployment")["spec"]["template"]["spec"]
    security = container()["securityContext"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # The image's own user is the one the pod runs as.
    assert f"--uid {spec['securityContext']['runAsUser']}" in (ROOT / "Dockerfile").read_text()
    mounts = {mount["mountPath"]: mount["name"] for mount in container()["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    metrics_dir = re.search(r"PROMETHEUS_MULTIPROC_DIR=(\S+)", (ROOT / "Dockerfile").read_text())
    assert metrics_dir is not None
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert Path(metrics_dir[1]).is_relative_to("/tmp")


def test_the_autoscaler_and_disruption_budget_target_the_deployment() -> None:
    deployment = of_kind("Deployment")
    hpa = of_kind("HorizontalPodAutoscaler")
    pdb = of_kind("PodDisruptionBudget")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert [metric["resource"]["name"] for metric in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["maxUnavailable"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (deployment["spec"]["selector"], pdb["spec"]["selector"]):
        assert selector["matchLabels"].items() <= labels.items()
    assert of_kind("Service")["spec"]["selector"].items() <= labels.items()
    # One gunicorn worker per core the pod is given.
    assert int(environment()["WEB_CONCURRENCY"] or 0) == int(container()["resources"]["limits"]["cpu"])


def test_the_probed_and_scraped_paths_answer_200_on_the_running_service(client: httpx.Client) -> None:
    annotations = of_kind("Deployment")["spec"]["template"]["metadata"]["annotations"]
    probes = [container()[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")]
    (port,) = [p["containerPort"] for p in container()["ports"] if p["name"] == "http"]

    assert {probe["port"] for probe in probes} == {"http"}
    assert str(port) == annotations["prometheus.io/port"] == "8000"  # the image's PORT
    for path in {probe["path"] for probe in probes} | {annotations["prometheus.io/path"]}:
        assert client.get(path).status_code == 200, path


def test_the_redis_component_validates_and_adds_only_the_redis_pieces() -> None:
    base = {(doc["kind"], doc["metadata"]["name"]) for doc in manifests()}
    with_redis = manifests(with_redis=True)
    for resource in with_redis:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)

    added = {(doc["kind"], doc["metadata"]["name"]) for doc in with_redis} - base
    assert added == {
        ("Deployment", "chat-service-redis"),
        ("Service", "chat-service-redis"),
        ("NetworkPolicy", "chat-service-redis"),
    }
    # Stateless by default: only the component points the service at a Redis.
    assert "CHAT_REDIS_URL" not in environment()


def test_the_redis_component_points_the_pods_at_its_redis_which_keeps_nothing_on_disk() -> None:
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for doc in manifests(with_redis=True)}
    config = docs["ConfigMap", "chat-service"]
    api = docs["Deployment", "chat-service"]
    redis = docs["Deployment", "chat-service-redis"]
    service = docs["Service", "chat-service-redis"]
    policy = docs["NetworkPolicy", "chat-service-redis"]
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    (port,) = service["spec"]["ports"]
    args = container["args"]
    options = dict(zip(args[0::2], args[1::2], strict=True))
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    api_labels = api["spec"]["template"]["metadata"]["labels"]

    assert config["data"]["CHAT_REDIS_URL"] == f"redis://{service['metadata']['name']}:{port['port']}/0"
    (api_container,) = api["spec"]["template"]["spec"]["containers"]
    assert {"configMapRef": {"name": "chat-service"}} in api_container["envFrom"]
    assert service["spec"]["selector"].items() <= redis_labels.items()
    # One Redis, never two at once (the answers would be split between them), nothing on disk.
    assert (redis["spec"]["replicas"], redis["spec"]["strategy"]["type"]) == (1, "Recreate")
    assert (options["--save"], options["--appendonly"]) == ("", "no")
    assert options["--maxmemory-policy"] == "allkeys-lru"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Its memory limit leaves Redis room beyond maxmemory.
    assert _mebibytes(options["--maxmemory"]) < _mebibytes(container["resources"]["limits"]["memory"])
    # Reached by the chat-service pods only; the chat Deployment does not claim the Redis pod.
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= redis_labels.items()
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    assert source["podSelector"]["matchLabels"].items() <= api_labels.items()
    assert not source["podSelector"]["matchLabels"].items() <= redis_labels.items()
    assert not api["spec"]["selector"]["matchLabels"].items() <= redis_labels.items()


def _mebibytes(quantity: str) -> int:
    """A Redis (`768mb`) or Kubernetes (`1Gi`) memory size, in MiB."""
    match = re.fullmatch(r"(\d+)(mb|gb|Mi|Gi)", quantity)
    assert match is not None, quantity
    factor = {"mb": 1, "gb": 1024, "Mi": 1, "Gi": 1024}[match[2]]  # Redis's mb is 2**20 bytes
    return int(match[1]) * factor
