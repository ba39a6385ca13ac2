DROP TABLE IF EXISTS completion_contents;
