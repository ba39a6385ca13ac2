"""Topic names. A breaking change to an event gets a v2 topic beside v1."""

EVENTS = "llmloop.events.v1"  # completions and feedback (keyed by completion id), baseline pins
METRICS = "llmloop.metrics.v1"  # statistics from the processor
ALERTS = "llmloop.alerts.v1"  # alert transitions from alerting
RETRAIN = "llmloop.retrain.v1"  # fine-tune job lifecycle and model versions
DEADLETTER = "llmloop.deadletter.v1"  # messages no handler could read, with the reason
# Alert notifications that no receiver accepted after the last retry (issue 5):
# NotificationAttempted events with outcome "dead_lettered"; `llmloop alerts dlq`.
NOTIFICATIONS_DEADLETTER = "llmloop.notifications.deadletter.v1"

ALL = (EVENTS, METRICS, ALERTS, RETRAIN, DEADLETTER, NOTIFICATIONS_DEADLETTER)

# The state topics of replicated services (issue 16), each created by its service with its
# own partitions and retention (k8s/README.md), so not in ALL:
# alerting's per-partition state (changes and snapshots), as many partitions as METRICS;
ALERTING_CHANGELOG = "llmloop.alerting.changelog.v1"
# retraining's joined feedback, read by its one controller: one partition, kept for ever.
RETRAIN_JOIN = "llmloop.retrain.join.v1"
