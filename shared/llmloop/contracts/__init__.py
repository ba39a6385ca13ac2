"""Contracts that services and the composition share: the metric catalogue (more to come)."""
