"""The composition package: the ``llmloop`` command line, ``llmloop up`` (the embedded
runtime), the demo traffic and the demo history (backfill).

The only package that knows more than one service, and it knows them through the
service registry (``llmloop.service.discover``), not by name: see ARCHITECTURE.md.
"""
