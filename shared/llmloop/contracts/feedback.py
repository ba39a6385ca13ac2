"""What counts as negative feedback: one definition, in ClickHouse SQL over ``feedback`` rows.

A thumbs down, a score in the lower half of its scale, or a correction. The bias
statistics, the feedback-rate metric, the canaries and the console's filters all
read it from here, so a dashboard, an alert and a review queue agree on it.
"""

from __future__ import annotations

# True for one feedback row that is negative.
NEGATIVE_ROW = (
    "(kind = 'thumbs' AND value < 0) "
    "OR (kind = 'score' AND value < (scale_min + scale_max) / 2) OR kind = 'correction'"
)
# Per completion (an aggregate over its feedback rows): 1.0 when any of them is negative.
NEGATIVE = f"toFloat64(max({NEGATIVE_ROW}))"
# The kinds that can be negative (a WHERE that lets the aggregate skip the rest).
NEGATIVE_KINDS = "'thumbs', 'score', 'correction'"
