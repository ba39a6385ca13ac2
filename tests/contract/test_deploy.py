"""Deployment files: kustomize renders, Kubernetes accepts every resource, compose is valid,
and every container runs a command the CLI actually has."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from llmloop_app.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZATIONS = ["k8s/base", "k8s/overlays/dev", "k8s/overlays/prod"]
K8S_VERSION = "1.31"


def cli_commands() -> set[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return set(subparsers.choices)


def render(path: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize) is needed to render k8s/"
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / path)], capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def containers(resource: dict) -> list[dict]:
    spec = resource.get("spec", {})
    pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get(
        "template", {}
    ).get("spec", {})
    return list(pod.get("containers", [])) + list(pod.get("initContainers", []))


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_every_rendered_resource_is_valid_kubernetes(path):
    resources_ = render(path)
    kinds = {r["kind"] for r in resources_}
    assert {
        "Deployment",
        "Job",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
    } <= kinds
    for resource in resources_:
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_every_container_runs_a_cli_command_with_probes_and_limits(path):
    commands = cli_commands()
    for resource in render(path):
        for container in containers(resource):
            assert container["args"][0] in commands, (
                resource["metadata"]["name"],
                container["args"],
            )
            assert container["resources"]["limits"]["memory"], resource["metadata"]["name"]
            if resource["kind"] == "Deployment" and container["args"][0] == "ingest":
                assert container["readinessProbe"] and container["livenessProbe"]


def _workloads(resources_: list[dict]) -> list[dict]:
    return [r for r in resources_ if r["kind"] in ("Deployment", "StatefulSet")]


def _env(resource: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for c in containers(resource) for e in c.get("env", [])}


def _partitions(resources_: list[dict]) -> int:
    config = next(
        r
        for r in resources_
        if r["kind"] == "ConfigMap"
        and r["metadata"]["name"].startswith("llmloop-")
        and "LLMLOOP_BUS_URL" in r.get("data", {})
    )
    return int(re.search(r"partitions=(\d+)", config["data"]["LLMLOOP_BUS_URL"])[1])


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_every_service_scales_by_replicas_with_a_disruption_budget(path):
    # Issue 16: every service is a Deployment (no pod owns state on a volume), each has
    # a PodDisruptionBudget selecting it, and no service can scale past the partitions
    # that its consumer group splits.
    resources_ = render(path)
    workloads = _workloads(resources_)
    assert {w["metadata"]["name"] for w in workloads} == {
        f"llmloop-{s}" for s in ("ingest", "processor", "alerting", "retraining")
    }
    assert all(w["kind"] == "Deployment" for w in workloads)
    budgets = [r for r in resources_ if r["kind"] == "PodDisruptionBudget"]
    hpas = {
        r["spec"]["scaleTargetRef"]["name"]: r
        for r in resources_
        if r["kind"] == "HorizontalPodAutoscaler"
    }
    partitions = _partitions(resources_)
    for w in workloads:
        labels = w["spec"]["template"]["metadata"]["labels"]
        [budget] = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        replicas = w["spec"]["replicas"]
        if "minAvailable" in budget["spec"]:  # a budget that still lets a node drain
            assert budget["spec"]["minAvailable"] < max(replicas, 1), w["metadata"]["name"]
        name = w["metadata"]["name"]
        top = hpas[name]["spec"]["maxReplicas"] if name in hpas else replicas
        if name != "llmloop-ingest":  # the others are consumer-group members
            assert top <= partitions, (name, top, partitions)
    # The stateful services run in their replicated mode, with no volume of their own.
    for name, flag in (
        ("llmloop-alerting", "LLMLOOP_ALERTING_REPLICATED"),
        ("llmloop-retraining", "LLMLOOP_RETRAIN_REPLICATED"),
    ):
        w = next(x for x in workloads if x["metadata"]["name"] == name)
        assert _env(w)[flag] == "true"
        assert "volumeClaimTemplates" not in w["spec"]
    # HPA only where a scale event is safe: not the retraining controller, not alerting.
    assert set(hpas) == {"llmloop-ingest", "llmloop-processor"}


def test_the_prod_overlay_runs_two_or_more_of_every_service():
    for w in _workloads(render("k8s/overlays/prod")):
        assert w["spec"]["replicas"] >= 2, w["metadata"]["name"]


def test_secrets_are_referenced_never_inlined():
    for path in KUSTOMIZATIONS:
        for resource in render(path):
            assert resource["kind"] != "Secret", f"{path} inlines a Secret"


def test_retraining_may_only_manage_jobs_and_read_pods():
    role = next(r for r in render("k8s/base") if r["kind"] == "Role")
    granted = {
        (g, res) for rule in role["rules"] for g in rule["apiGroups"] for res in rule["resources"]
    }
    assert granted == {("batch", "jobs"), ("", "pods"), ("", "pods/log")}
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs <= {"create", "get", "list", "watch", "delete"}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_follows_the_compose_specification():
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = yaml.safe_load(schema_file.read_text())
    jsonschema.Draft7Validator(schema).validate(compose())  # the spec is draft-07


def test_compose_services_run_cli_commands_and_wait_for_what_they_need():
    commands = cli_commands()
    services = compose()["services"]
    ours = {
        name: s for name, s in services.items() if str(s.get("image", "")).startswith("llmloop")
    }
    assert {"migrate", "ingest", "processor", "alerting", "retraining", "trainer"} <= set(ours)
    for name, service in ours.items():
        assert service["command"][0] in commands, (name, service["command"])
        assert service.get("depends_on"), f"{name} starts before what it needs"
    assert (
        services["processor"]["depends_on"]["migrate"]["condition"]
        == "service_completed_successfully"
    )
    assert services["trainer"]["profiles"] == ["gpu"]
    devices = services["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]


def test_compose_fails_fast_on_missing_secrets():
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("CLICKHOUSE_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "LLMLOOP_WEBHOOK_SECRET"):
        assert f"${{{secret}:?" in text, f"{secret} must be required (${{VAR:?message}})"
        assert f"{secret}=" in (ROOT / ".env.example").read_text()


def test_images_run_as_non_root():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "\nUSER 10001" in dockerfile
    for path in KUSTOMIZATIONS:
        for resource in render(path):
            pod = resource.get("spec", {}).get("template", {}).get("spec")
            if pod:
                assert pod["securityContext"]["runAsNonRoot"] is True, resource["metadata"]["name"]


@pytest.mark.parametrize(
    ("copy", "shipped"),
    [
        ("k8s/base/config/rules.yaml", "services/alerting/llmloop_alerting/default_rules.yaml"),
        ("k8s/base/config/dpo-job.yaml", "services/retraining/llmloop_retraining/dpo-job.yaml"),
    ],
)
def test_kustomize_copies_match_what_the_package_ships(copy, shipped):
    # kustomize reads only files under its root, so the ConfigMaps use copies.
    assert (ROOT / copy).read_text() == (ROOT / shipped).read_text(), f"cp {shipped} {copy}"


def test_the_image_copies_every_package_root():
    # A new top-level folder of packages (the composition package, say) must reach the image.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    roots = {path.split("/")[0] for path in pyproject["tool"]["setuptools"]["package-dir"].values()}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert roots == {"shared", "apps", "services", "schemas"}
    for root in roots:
        assert f"\nCOPY {root} {root}\n" in dockerfile, root


def test_the_image_installs_each_extra_with_its_own_extras_expanded():
    # The image's dependency layer comes from scripts/extra_deps.py, not a package skeleton.
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "extra_deps.py"), "processor"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert not [r for r in out if r.startswith("llmloop[")]
    names = {re.split(r"[<>=\[ ]", r)[0] for r in out}
    assert {"pydantic", "aiokafka", "chdb", "faust-streaming", "onnxruntime"} <= names
    assert "fastapi" not in names  # ingest's, not the processor's
