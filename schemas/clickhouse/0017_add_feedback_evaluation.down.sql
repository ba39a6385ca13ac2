ALTER TABLE feedback
    DROP COLUMN IF EXISTS label,
    DROP COLUMN IF EXISTS evaluation;
