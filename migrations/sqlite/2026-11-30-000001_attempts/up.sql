-- Each claim of a WindowPoSt job gets an attempt id that is never used again: the worker echoes
-- it with the job id (`<id>@<attempt>`), and heartbeats and finishes must name the attempt in
-- force. A stale slot of the same worker (its job reset and claimed again meanwhile) is refused.
ALTER TABLE wdpost_jobs ADD COLUMN attempt VARCHAR(32) NULL;
ALTER TABLE wdpost_jobs_archived ADD COLUMN attempt VARCHAR(32) NULL;
