"""Settings come from LLMLOOP_* variables (the names the k8s manifests set), read at start."""

from __future__ import annotations

from pathlib import Path

from llmloop_retraining.config import RetrainingSettings
from llmloop_retraining.policy import TriggerPolicy
from llmloop_retraining.service import launcher_for


def test_kubernetes_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMLOOP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LLMLOOP_RETRAIN_LAUNCHER", "kubernetes")
    monkeypatch.setenv("LLMLOOP_RETRAIN_JOB_TEMPLATE", "/etc/llmloop/dpo-job.yaml")
    monkeypatch.setenv("LLMLOOP_RETRAIN_NAMESPACE", "ml")
    monkeypatch.setenv("LLMLOOP_RETRAIN_JOB_GPUS", "8")
    settings = RetrainingSettings()
    launcher = launcher_for(settings, TriggerPolicy())
    assert launcher.name == "kubernetes"
    assert launcher.template == Path("/etc/llmloop/dpo-job.yaml")
    assert (launcher.namespace, launcher.gpus) == ("ml", 8)
    assert settings.state_path == tmp_path / "retraining" / "state.db"
    # A policy naming its launcher wins over the default.
    assert launcher_for(settings, TriggerPolicy(launcher="local")).name == "local"
