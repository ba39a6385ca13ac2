"""The stream processor: the one writer of ClickHouse.

Three parts, run by ``llmloop up`` (through the bus port's ``consume()``), by
``llmloop processor``, or by the faust app (``faust -A llmloop_processor.app worker``):

* the sink (``sink.Sink``): every topic into its table, each event once;
* the enricher (``enrichment``): features and MiniLM embeddings of completions;
* the statistics timer (``stats``): windowed drift, bias and feedback metrics,
  published to ``llmloop.metrics.v1`` (names and labels listed in ``stats``).

The maths (``drift``, ``bias``, ``feedback``, ``enrich``) are plain functions.
"""
