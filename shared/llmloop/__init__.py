"""llmloop: close the loop around a deployed LLM.

The base install is what an app needs: the event models and the SDK.
"""

from typing import TYPE_CHECKING, Any

from llmloop.events import (
    AlertStateChanged,
    ChatMessage,
    CommentFeedback,
    CompletionLogged,
    CorrectionFeedback,
    MetricComputed,
    PreferenceFeedback,
    RetrainJobUpdated,
    ScoreFeedback,
    ThumbsFeedback,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from llmloop.sdk import AsyncClient, Client


def __getattr__(name: str) -> Any:
    # The SDK (and httpx) load on first use: `llmloop --help` and the services skip it.
    if name in ("Client", "AsyncClient"):
        from llmloop import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'llmloop' has no attribute {name!r}")


__all__ = [
    "AlertStateChanged",
    "AsyncClient",
    "ChatMessage",
    "Client",
    "CommentFeedback",
    "CompletionLogged",
    "CorrectionFeedback",
    "MetricComputed",
    "PreferenceFeedback",
    "RetrainJobUpdated",
    "ScoreFeedback",
    "ThumbsFeedback",
    "__version__",
]
