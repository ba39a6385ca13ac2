"""``llmloop report``: an Evidently drift report for any window, on demand.

Evidently is the established reference implementation; the streaming metrics
are ours (cheaper, bounded memory) and a test keeps the two in agreement.
Evidently costs ~4 s to import and its embedding widget adds a t-SNE plot
(seconds per thousand rows), so it lives here, never in the stream.
"""

from __future__ import annotations

from pathlib import Path

from llmloop_processor.windows import SCALARS, Window

SAMPLE = 2_000


def _frame(window: Window, embeddings: bool, pca: int) -> tuple[object, list[str]]:
    import pandas as pd

    frame = pd.DataFrame({c: window.scalars[c] for c in SCALARS})
    frame["toxic"] = window.toxic
    frame["refusal"] = window.refusal
    columns: list[str] = []
    if embeddings and len(window.prompt_embeddings) == len(frame):
        emb = window.prompt_embeddings[:, :pca]
        columns = [f"prompt_emb_{i}" for i in range(emb.shape[1])]
        frame = pd.concat([frame, pd.DataFrame(emb, columns=columns)], axis=1)
    return frame, columns


def write_report(
    reference: Window,
    current: Window,
    out: Path,
    *,
    title: str,
    embeddings: bool = True,
) -> Path:
    """Write an HTML drift report (scalar features, and prompt embeddings when present)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift
    from evidently.metrics.embeddings import MMDDriftMethod
    from evidently.presets import DataDriftPreset

    # Embeddings go in only when every row of both windows has one (sampling can skip some).
    use_emb = embeddings and all(
        len(w.prompt_embeddings) == w.size and w.size > 0 for w in (reference, current)
    )
    ref_df, emb_cols = _frame(reference, use_emb, 384)
    cur_df, _ = _frame(current, use_emb, 384)
    numeric = [*SCALARS, "toxic", "refusal"]
    definition = DataDefinition(
        numerical_columns=numeric + emb_cols,
        embeddings={"prompt": emb_cols} if emb_cols else None,
    )
    metrics: list[object] = [DataDriftPreset(columns=numeric)]
    if emb_cols:
        metrics.append(EmbeddingsDrift(embeddings_name="prompt", drift_method=MMDDriftMethod()))
    report = Report(metrics)  # type: ignore[arg-type]
    snapshot = report.run(
        current_data=Dataset.from_pandas(cur_df, data_definition=definition),
        reference_data=Dataset.from_pandas(ref_df, data_definition=definition),
        name=title,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(out))
    return out
