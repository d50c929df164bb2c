-- Deadline-aware WindowPoSt: each job knows when its challenge window closes, and covers one
-- group of the deadline's partitions ([task] partitions_per_job), so several provers can share a
-- deadline. The same columns, in the same order, on the archive (it is filled by SELECT *).
ALTER TABLE wdpost_jobs ADD COLUMN deadline_close_at DATETIME NULL;
ALTER TABLE wdpost_jobs ADD COLUMN part_group INTEGER NOT NULL DEFAULT 0;
ALTER TABLE wdpost_jobs_archived ADD COLUMN deadline_close_at DATETIME NULL;
ALTER TABLE wdpost_jobs_archived ADD COLUMN part_group INTEGER NOT NULL DEFAULT 0;
DROP INDEX wdpost_jobs_deadline ON wdpost_jobs;
CREATE UNIQUE INDEX wdpost_jobs_deadline ON wdpost_jobs (miner_id, deadline_idx, deadline_open_at, part_group);
CREATE INDEX wdpost_jobs_close ON wdpost_jobs (deadline_close_at);

-- A job whose window closed without a verified proof, recorded once (whichever manager sees it
-- first); its sectors are then marked faulty until a later WindowPoSt proves them again.
CREATE TABLE wdpost_missed (
    job_id            VARCHAR(64)   NOT NULL PRIMARY KEY,
    miner_id          BIGINT        NOT NULL,
    deadline_idx      INTEGER       NOT NULL,
    partitions        VARCHAR(1024) NOT NULL,
    sectors           INTEGER       NOT NULL,
    deadline_open_at  DATETIME      NOT NULL,
    deadline_close_at DATETIME      NOT NULL,
    reason            TEXT          NOT NULL,
    recorded_at       DATETIME      NOT NULL
);
CREATE INDEX wdpost_missed_miner ON wdpost_missed (miner_id, recorded_at);

ALTER TABLE sectors ADD COLUMN faulty_at DATETIME NULL;
ALTER TABLE sectors ADD COLUMN fault_reason TEXT NULL;
-- Set when the sector came in through `util sealer sectors import-json`.
ALTER TABLE sectors ADD COLUMN imported_at DATETIME NULL;
-- The state an aborted sector was in, for `util sealer sectors restore`.
ALTER TABLE sectors ADD COLUMN aborted_from VARCHAR(64) NULL;
