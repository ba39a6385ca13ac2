"""The stream processor: the one writer of ClickHouse.

It reads every topic, writes each event to its table exactly once, and (in
later stages) enriches completions and computes drift and bias statistics.
"""
