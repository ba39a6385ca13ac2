DROP TABLE IF EXISTS completions;
