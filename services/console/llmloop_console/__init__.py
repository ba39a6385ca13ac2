"""The console: the dashboards, conversations, alerts, retraining and a review queue in the
browser, served by ``llmloop up`` at ``/`` or on its own by ``llmloop console``.

It reads the store through its port and writes only as a producer: a reviewer's judgment
is a feedback event through ingest, a promotion an event on the retrain topic.
"""
