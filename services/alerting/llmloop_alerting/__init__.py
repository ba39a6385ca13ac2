"""The alerting service: rules on metric events, alert state, signed webhooks."""
