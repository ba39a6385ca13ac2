"""The kubernetes launcher: a valid batch/v1 Job that requests GPUs, submitted and watched."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
from fake_kube import FakeKube

from llmloop_retraining.kube import KubernetesLauncher, default_template, job_name, render
from llmloop_retraining.launcher import JobSpec

K8S_VERSION = "1.30"


def spec(tmp_path: Path, model: str = "org/Llama-3.1-8B:instruct") -> JobSpec:
    return JobSpec(
        job_id="20260101-120000-abc123",
        model=model,
        base_model="/models/llama-3.1-8b",
        dataset_version="llama-0123456789ab",
        dataset_dir=tmp_path / "datasets" / "llama" / "llama-0123456789ab",
        output_dir=tmp_path / "models" / "20260101-120000-abc123",
        train={"max_steps": 500, "lora": True},
    )


def manifest(tmp_path: Path, **kw):
    return render(
        spec(tmp_path),
        template=default_template(),
        image="llmloop-trainer:1",
        datasets_root=tmp_path / "datasets",
        output_root=tmp_path / "models",
        **kw,
    )


@pytest.mark.parametrize("gpus", [1, 4])
def test_rendered_job_validates_against_the_kubernetes_schema_and_requests_gpus(tmp_path, gpus):
    job = manifest(tmp_path, gpus=gpus)
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)
    assert container["resources"]["requests"]["nvidia.com/gpu"] == str(gpus)
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["datasets"] == "/llmloop/datasets" and mounts["output"] == "/llmloop/output"
    if gpus > 1:  # one process per GPU
        assert container["command"][:5] == [
            "accelerate",
            "launch",
            "--multi_gpu",
            "--num_processes",
            "4",
        ]
    else:
        assert container["command"] == ["python", "-m", "llmloop_retraining.jobs.dpo"]
    import json

    job_spec = json.loads(container["args"][1])
    assert job_spec["dataset_dir"] == "/llmloop/datasets/llama/llama-0123456789ab"
    assert job_spec["output_dir"] == "/llmloop/output/20260101-120000-abc123"
    assert job_spec["lora"] is True and job_spec["base_model"] == "/models/llama-3.1-8b"


def test_names_and_labels_are_valid_whatever_the_model_is_called(tmp_path):
    job = manifest(tmp_path)
    assert job["metadata"]["labels"]["llmloop.dev/model"] == "org-Llama-3.1-8B-instruct"
    assert job_name("X" * 100) == ("llmloop-dpo-" + "x" * 100)[:63]
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)


def test_cluster_node_selector_and_tolerations_override_the_template(tmp_path):
    job = manifest(
        tmp_path,
        node_selector={"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
        tolerations=[],
    )
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert pod["tolerations"] == []
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)


PENDING = {
    "phase": "Pending",
    "conditions": [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        }
    ],
}
RUNNING = {"phase": "Running"}
SUCCEEDED = {"phase": "Succeeded"}


async def test_launcher_submits_the_job_and_maps_pod_states_to_updates(tmp_path):
    with FakeKube([PENDING, PENDING, RUNNING, RUNNING, SUCCEEDED]) as kube:
        launcher = KubernetesLauncher(
            image="llmloop-trainer:1",
            datasets_root=tmp_path / "datasets",
            output_root=tmp_path / "models",
            api_client=kube.client(),
            poll_s=0.01,
        )
        updates = []

        async def on_update(update):
            updates.append(update)

        final = await launcher.run(spec(tmp_path), on_update)
    assert final.stage == "succeeded"
    assert [(u.stage, u.message) for u in updates] == [
        ("progress", "submitted Job llmloop-dpo-20260101-120000-abc123"),
        ("progress", "pending: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."),
        ("started", "running on gpu-node-1"),
    ]
    [submitted] = kube.jobs.values()
    kubernetes_validate.validate(submitted, K8S_VERSION, strict=True)
    assert ("POST", "/apis/batch/v1/namespaces/llmloop/jobs") in kube.requests


async def test_an_image_that_cannot_be_pulled_fails_the_job_and_deletes_it(tmp_path):
    pull_error = {
        "phase": "Pending",
        "containerStatuses": [
            {
                "name": "dpo",
                "ready": False,
                "restartCount": 0,
                "image": "x",
                "imageID": "",
                "state": {
                    "waiting": {"reason": "ImagePullBackOff", "message": "pull access denied"}
                },
            }
        ],
    }
    with FakeKube([pull_error]) as kube:
        launcher = KubernetesLauncher(
            image="nope:1",
            datasets_root=tmp_path / "datasets",
            output_root=tmp_path / "models",
            api_client=kube.client(),
            poll_s=0.01,
        )

        async def ignore(update):
            pass

        final = await launcher.run(spec(tmp_path), ignore)
    assert final.stage == "failed" and "ImagePullBackOff: pull access denied" in final.message
    assert kube.deleted == ["llmloop-dpo-20260101-120000-abc123"]


async def test_a_refused_submission_is_a_failed_job_with_the_reason(tmp_path):
    with FakeKube([RUNNING]) as kube:
        launcher = KubernetesLauncher(
            image="x:1",
            datasets_root=tmp_path / "datasets",
            output_root=tmp_path / "models",
            api_client=kube.client(),
            poll_s=0.01,
        )
        kube.jobs["llmloop-dpo-20260101-120000-abc123"] = {}  # already exists

        async def ignore(update):
            pass

        final = await launcher.run(spec(tmp_path), ignore)
    assert final.stage == "failed" and "409" in final.message
