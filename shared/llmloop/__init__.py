"""llmloop: close the loop around a deployed LLM.

The base install is what an app needs: the event models and the SDK.
"""

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

__all__ = [
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
    "__version__",
]
