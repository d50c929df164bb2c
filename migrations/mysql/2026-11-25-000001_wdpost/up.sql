-- The mock chain assigns a proven sector to a deadline and a partition of it.
ALTER TABLE sectors ADD COLUMN deadline_idx INTEGER NULL;
ALTER TABLE sectors ADD COLUMN partition_idx INTEGER NULL;
ALTER TABLE sectors ADD COLUMN proven_at DATETIME NULL;

-- WindowPoSt jobs: one per (miner, deadline, opening of that deadline); workers claim them.
-- state: ReadyToRun, Running, Succeed, Failed. input/output are the jobs' JSON.
CREATE TABLE wdpost_jobs (
    id                VARCHAR(64)   NOT NULL PRIMARY KEY,
    miner_id          BIGINT        NOT NULL,
    deadline_idx      INTEGER       NOT NULL,
    partitions        VARCHAR(1024) NOT NULL,
    proof_type        VARCHAR(64)   NOT NULL,
    sectors           INTEGER       NOT NULL,
    state             VARCHAR(16)   NOT NULL,
    try_num           INTEGER       NOT NULL DEFAULT 0,
    worker_name       VARCHAR(255)  NULL,
    error_reason      TEXT          NULL,
    deadline_open_at  DATETIME      NOT NULL,
    created_at        DATETIME      NOT NULL,
    started_at        DATETIME      NULL,
    heartbeat_at      DATETIME      NULL,
    finished_at       DATETIME      NULL,
    updated_at        DATETIME      NOT NULL,
    input             MEDIUMTEXT    NOT NULL,
    output            MEDIUMTEXT    NULL
);
-- One job per opening of a deadline, whichever manager creates it first.
CREATE UNIQUE INDEX wdpost_jobs_deadline ON wdpost_jobs (miner_id, deadline_idx, deadline_open_at);
CREATE INDEX wdpost_jobs_state ON wdpost_jobs (state, created_at);

-- Finished jobs older than [task] should_archive, moved here by the job keeper.
CREATE TABLE wdpost_jobs_archived (
    id                VARCHAR(64)   NOT NULL PRIMARY KEY,
    miner_id          BIGINT        NOT NULL,
    deadline_idx      INTEGER       NOT NULL,
    partitions        VARCHAR(1024) NOT NULL,
    proof_type        VARCHAR(64)   NOT NULL,
    sectors           INTEGER       NOT NULL,
    state             VARCHAR(16)   NOT NULL,
    try_num           INTEGER       NOT NULL DEFAULT 0,
    worker_name       VARCHAR(255)  NULL,
    error_reason      TEXT          NULL,
    deadline_open_at  DATETIME      NOT NULL,
    created_at        DATETIME      NOT NULL,
    started_at        DATETIME      NULL,
    heartbeat_at      DATETIME      NULL,
    finished_at       DATETIME      NULL,
    updated_at        DATETIME      NOT NULL,
    input             MEDIUMTEXT    NOT NULL,
    output            MEDIUMTEXT    NULL
);
