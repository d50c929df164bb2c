DROP TABLE wdpost_jobs_archived;
DROP TABLE wdpost_jobs;
ALTER TABLE sectors DROP COLUMN proven_at;
ALTER TABLE sectors DROP COLUMN partition_idx;
ALTER TABLE sectors DROP COLUMN deadline_idx;
