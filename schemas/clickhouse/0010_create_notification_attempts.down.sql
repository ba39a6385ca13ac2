DROP TABLE IF EXISTS notification_attempts;
