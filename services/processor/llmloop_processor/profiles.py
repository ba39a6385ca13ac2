"""whylogs profiles of each window's scalar features, kept in ``window_profiles``.

A profile (counts, distribution sketches, types) is small, mergeable across
windows and readable by any whylogs tool: ``DatasetProfileView.deserialize``
on the ``profile`` column. The stream's own drift numbers do not depend on it.
"""

from __future__ import annotations

import base64
import sys
import threading
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from llmloop.store import Store
from llmloop_processor.windows import SCALARS, Window

SCHEMA = pa.schema(
    [
        ("project_id", pa.string()),
        ("model", pa.string()),
        ("prompt_version", pa.string()),
        ("window_start", pa.timestamp("ms", tz="UTC")),
        ("window_end", pa.timestamp("ms", tz="UTC")),
        ("sample_size", pa.uint32()),
        ("profile", pa.string()),
    ]
)


# whylogs imports these when it can, for helpers we never call (KMeans, PCA): about
# 35 MB resident in the processor (issue 18). Hidden while whylogs loads, so it takes
# its fallback; imported by anything else afterwards, they load as usual.
_UNUSED = ("sklearn.cluster", "sklearn.decomposition", "sklearn.metrics.pairwise")


def _whylogs() -> Any:
    # whylogs 1.6 still uses np.unicode_, which numpy 2 removed (pyarrow needs numpy 2).
    if not hasattr(np, "unicode_"):
        np.unicode_ = np.str_  # type: ignore[attr-defined]
    if "whylogs" not in sys.modules:
        hidden = {name: sys.modules.get(name) for name in _UNUSED}
        for name in _UNUSED:
            sys.modules[name] = None  # type: ignore[assignment]  # None: `import` fails
        try:
            import whylogs  # noqa: F401
        finally:
            for name, module in hidden.items():
                if module is None:
                    del sys.modules[name]
                else:
                    sys.modules[name] = module
    return sys.modules["whylogs"]


def profile(window: Window) -> bytes:
    """The serialized whylogs profile of a window's scalar columns."""
    import pandas as pd

    frame = pd.DataFrame({c: window.scalars[c] for c in SCALARS})
    frame["toxic"] = window.toxic
    frame["refusal"] = window.refusal
    frame["negative_feedback"] = window.negative_feedback
    with _WHYLOGS:  # not thread-safe: two keys profiled at once deadlocked (stats workers)
        return bytes(_whylogs().log(frame).view().serialize())


_WHYLOGS = threading.Lock()


def write_profile(
    store: Store, key: tuple[str, str, str], start: datetime, end: datetime, window: Window
) -> None:
    """Store the window's profile (base64 text); a recomputed window replaces its row."""
    row = {
        "project_id": key[0],
        "model": key[1],
        "prompt_version": key[2],
        "window_start": start,
        "window_end": end,
        "sample_size": window.size,
        "profile": base64.b64encode(profile(window)).decode(),
    }
    store.insert("window_profiles", pa.Table.from_pylist([row], schema=SCHEMA))


def read_profile(encoded: str) -> Any:
    """A stored profile back as a whylogs ``DatasetProfileView``."""
    from whylogs.core import DatasetProfileView

    _whylogs()
    return DatasetProfileView.deserialize(base64.b64decode(encoded))
