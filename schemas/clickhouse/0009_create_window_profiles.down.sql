DROP TABLE IF EXISTS window_profiles;
