-- Notifications given up on after their last attempt and not delivered since
-- (a replay that succeeds takes one off the list): what `llmloop alerts dlq`
-- shows, for Grafana. A view, so the attempts table stays the one source.
CREATE VIEW IF NOT EXISTS notification_dead_letters AS
SELECT
    notification_id,
    any(project_id) AS project_id,
    any(rule) AS rule,
    any(fingerprint) AS fingerprint,
    any(status) AS status,
    any(receiver) AS receiver,
    any(receiver_type) AS receiver_type,
    maxIf(ts, outcome = 'dead_lettered') AS dead_lettered_at,
    argMaxIf(error, ts, outcome = 'dead_lettered') AS error,
    argMaxIf(http_status, ts, outcome = 'dead_lettered') AS http_status,
    countIf(outcome IN ('retrying', 'dead_lettered')) AS failed_attempts
FROM notification_attempts FINAL
GROUP BY notification_id
HAVING countIf(outcome = 'dead_lettered') > 0 AND maxIf(ts, outcome = 'delivered') < dead_lettered_at;
