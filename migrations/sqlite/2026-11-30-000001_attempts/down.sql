ALTER TABLE wdpost_jobs_archived DROP COLUMN attempt;
ALTER TABLE wdpost_jobs DROP COLUMN attempt;
