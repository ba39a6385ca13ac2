"""llmloop: close the loop around a deployed LLM.

The base install is what an app needs: the event models and the SDK.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Re-exported for apps; loaded on first use, like the SDK: a process that imports one
# shared module (the processor's feature worker, `llmloop --help`) does not pay for
# pydantic and the event models (issue 18).
_EVENTS = (
    "AlertStateChanged",
    "ChatMessage",
    "CommentFeedback",
    "CompletionLogged",
    "CorrectionFeedback",
    "MetricComputed",
    "PreferenceFeedback",
    "RetrainJobUpdated",
    "ScoreFeedback",
    "ThumbsFeedback",
)

if TYPE_CHECKING:
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
    from llmloop.sdk import AsyncClient, Client


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        from llmloop import sdk

        return getattr(sdk, name)
    if name in _EVENTS:
        from llmloop import events

        return getattr(events, name)
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
