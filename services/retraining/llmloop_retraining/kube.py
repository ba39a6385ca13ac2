"""The ``kubernetes`` launcher: a ``batch/v1`` Job on GPU nodes, submitted and watched.

The manifest comes from ``dpo-job.yaml`` (shipped in this package): placeholders filled with
YAML-quoted values, then the GPU count, the command (``accelerate launch``
across the GPUs when there are several) and the cluster's node selector and
tolerations set on the parsed object. The official ``kubernetes`` client
submits it; the launcher then polls the Job and its pod and maps their states
to job updates (Pending -> waiting for a GPU node, Running -> started,
Succeeded / Failed -> the end). The job's output lands on the shared output
volume, which the retraining service mounts at ``DATA_DIR/models``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import yaml

from llmloop_retraining.launcher import JOB_MODULE, JobSpec, JobUpdate, OnUpdate

log = logging.getLogger(__name__)

DATASETS_MOUNT = "/llmloop/datasets"
OUTPUT_MOUNT = "/llmloop/output"
# Waiting reasons that will not fix themselves: fail the job instead of waiting forever.
FATAL_WAITING = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
}


def default_template() -> Path:
    """The Job template shipped with the package (k8s/base/config/dpo-job.yaml is its copy
    for kustomize, kept identical by a test; in a cluster the ConfigMap is mounted)."""
    return Path(str(resources.files("llmloop_retraining") / "dpo-job.yaml"))


def _label(value: str) -> str:
    """A valid label value: 63 characters of [A-Za-z0-9_.-], alphanumeric at both ends."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[:63].strip("-_.") or "x"


def job_name(job_id: str) -> str:
    """A DNS-1123 name for the Job (lower case, 63 characters at most)."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"llmloop-dpo-{job_id}".lower()).strip("-")
    return name[:63].rstrip("-")


def render(
    spec: JobSpec,
    *,
    template: Path,
    image: str,
    namespace: str = "llmloop",
    gpus: int = 1,
    datasets_root: Path,
    output_root: Path,
    datasets_claim: str = "llmloop-datasets",
    output_claim: str = "llmloop-models",
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The Job manifest for ``spec``, as a dict ready for the API (and for validation)."""
    if gpus < 1:
        raise ValueError(f"gpus must be at least 1, got {gpus}")
    # Paths as the job's container sees them: the same files on the shared volumes.
    in_pod = {
        **spec.payload(),
        "dataset_dir": f"{DATASETS_MOUNT}/{spec.dataset_dir.relative_to(datasets_root).as_posix()}",
        "output_dir": f"{OUTPUT_MOUNT}/{spec.output_dir.relative_to(output_root).as_posix()}",
        # Benchmarks live inside the datasets volume (benchmarks.py): same mount.
        "benchmarks": [
            {
                **b,
                "path": f"{DATASETS_MOUNT}/{Path(b['path']).relative_to(datasets_root).as_posix()}",
            }
            for b in spec.benchmarks
        ],
    }
    values = {
        "name": job_name(spec.job_id),
        "namespace": namespace,
        "job_label": _label(spec.job_id),
        "model_label": _label(spec.model),
        "image": image,
        "spec_json": json.dumps(in_pod, sort_keys=True),
        "datasets_claim": datasets_claim,
        "output_claim": output_claim,
    }
    # json.dumps makes each value a quoted YAML scalar: a model name cannot inject YAML.
    text = Template(template.read_text()).substitute({k: json.dumps(v) for k, v in values.items()})
    manifest: dict[str, Any] = yaml.safe_load(text)
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    for side in ("requests", "limits"):
        # A quantity is a string in the API (the client validates: "1", not 1).
        container["resources"][side]["nvidia.com/gpu"] = str(gpus)
    if gpus > 1:
        # One process per GPU; accelerate sets up torch.distributed (DDP) for TRL.
        container["command"] = [
            "accelerate",
            "launch",
            "--multi_gpu",
            "--num_processes",
            str(gpus),
            "-m",
            JOB_MODULE,
        ]
    if node_selector is not None:
        pod["nodeSelector"] = node_selector
    if tolerations is not None:
        pod["tolerations"] = tolerations
    return manifest


def pod_update(pod: dict[str, Any]) -> JobUpdate | None:
    """What a pod's state means for the job, or None when nothing new is to be said."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    waiting = [
        (cs.get("state") or {}).get("waiting") or {} for cs in status.get("containerStatuses") or []
    ]
    for w in waiting:
        if w.get("reason") in FATAL_WAITING:
            return JobUpdate("failed", message=f"{w['reason']}: {w.get('message', '')}".strip())
    if phase == "Pending":
        unscheduled = [
            c
            for c in status.get("conditions") or []
            if c.get("type") == "PodScheduled" and c.get("status") == "False"
        ]
        why = unscheduled[0].get("message") if unscheduled else "waiting for a GPU node"
        return JobUpdate("progress", progress=0.0, message=f"pending: {why}")
    if phase == "Running":
        return JobUpdate(
            "started", progress=0.0, message=f"running on {pod['spec'].get('nodeName')}"
        )
    if phase == "Succeeded":
        return JobUpdate("succeeded", progress=1.0, message="pod succeeded")
    if phase == "Failed":
        terminated = [
            (cs.get("state") or {}).get("terminated") or {}
            for cs in status.get("containerStatuses") or []
        ]
        detail = "; ".join(
            f"{t.get('reason', 'Error')} (exit {t.get('exitCode')}) {t.get('message', '')}".strip()
            for t in terminated
            if t
        )
        return JobUpdate("failed", message=f"pod failed: {detail or status.get('reason', '')}")
    return None


class KubernetesLauncher:
    """Submits the rendered Job with the official client and follows it to its end."""

    name = "kubernetes"

    def __init__(
        self,
        *,
        image: str,
        datasets_root: Path,
        output_root: Path,
        namespace: str = "llmloop",
        gpus: int = 1,
        template: Path | None = None,
        node_selector: dict[str, str] | None = None,
        tolerations: list[dict[str, Any]] | None = None,
        api_client: Any = None,
        poll_s: float = 5.0,
    ) -> None:
        self.image = image
        self.datasets_root = datasets_root
        self.output_root = output_root
        self.namespace = namespace
        self.gpus = gpus
        self.template = template or default_template()
        self.node_selector = node_selector
        self.tolerations = tolerations
        self.api_client = api_client
        self.poll_s = poll_s

    def manifest(self, spec: JobSpec) -> dict[str, Any]:
        return render(
            spec,
            template=self.template,
            image=self.image,
            namespace=self.namespace,
            gpus=self.gpus,
            datasets_root=self.datasets_root,
            output_root=self.output_root,
            node_selector=self.node_selector,
            tolerations=self.tolerations,
        )

    def describe(self, spec: JobSpec) -> str:
        return yaml.safe_dump(self.manifest(spec), sort_keys=False)

    def _client(self) -> Any:
        if self.api_client is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self.api_client = client.ApiClient()
        return self.api_client

    async def run(self, spec: JobSpec, on_update: OnUpdate) -> JobUpdate:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        manifest = self.manifest(spec)
        name = manifest["metadata"]["name"]
        api = self._client()
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        try:
            await asyncio.to_thread(batch.create_namespaced_job, self.namespace, manifest)
        except ApiException as exc:
            return JobUpdate(
                "failed",
                message=f"the cluster refused Job {name}: {exc.status} "
                f"{exc.reason}: {(exc.body or '')[:500]}",
            )
        log.info("submitted Job %s/%s (%d GPU)", self.namespace, name, self.gpus)
        await on_update(JobUpdate("progress", progress=0.0, message=f"submitted Job {name}"))
        said: tuple[str, str | None] | None = None
        while True:
            job = await asyncio.to_thread(batch.read_namespaced_job_status, name, self.namespace)
            pods = await asyncio.to_thread(
                core.list_namespaced_pod, self.namespace, label_selector=f"job-name={name}"
            )
            for pod in pods.items:
                update = pod_update(api.sanitize_for_serialization(pod))
                if update is None:
                    continue
                if update.stage in ("succeeded", "failed"):
                    if update.stage == "failed":
                        await self._delete(batch, name)
                    return update
                if (update.stage, update.message) != said:
                    said = (update.stage, update.message)
                    await on_update(update)
            status = job.status
            if status is not None and status.succeeded:
                return JobUpdate("succeeded", progress=1.0, message=f"Job {name} complete")
            for condition in (status.conditions if status is not None else None) or []:
                if condition.type == "Failed" and condition.status == "True":
                    return JobUpdate(
                        "failed",
                        message=f"Job {name} failed: {condition.reason}: {condition.message}",
                    )
            await asyncio.sleep(self.poll_s)

    async def _delete(self, batch: Any, name: str) -> None:
        from kubernetes.client.rest import ApiException

        try:
            await asyncio.to_thread(
                batch.delete_namespaced_job, name, self.namespace, propagation_policy="Background"
            )
        except ApiException as exc:  # already gone, or no right to delete: say so, go on
            log.warning("could not delete failed Job %s: %s", name, exc.reason)
