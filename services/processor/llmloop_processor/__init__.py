"""The stream processor: the one writer of ClickHouse.

Four parts (``runtime.services``), run by ``llmloop up`` and ``llmloop processor`` as
consumers (``llmloop.consumer``), or fed by the faust app's agents
(``faust -A llmloop_processor.app worker``):

* the sink (``sink.Sink``): every topic into its table, each event once;
* the enricher (``enrichment``): the scalar features of every completion;
* the embedding stage (``embedding``): MiniLM vectors of a sample sized per key;
* the statistics timer (``stats``): windowed drift, bias and feedback metrics,
  published to ``llmloop.metrics.v1`` (names and labels listed in ``stats``).

The maths (``drift``, ``bias``, ``feedback``, ``features``) are plain functions.
"""
