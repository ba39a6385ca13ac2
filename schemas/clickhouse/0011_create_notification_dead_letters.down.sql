DROP VIEW IF EXISTS notification_dead_letters;
