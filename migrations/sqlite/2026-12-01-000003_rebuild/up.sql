-- Rebuild: an operator queues a proven sector whose files are lost (Queued); one rebuild thread
-- is given it (Allocated, to owner); it is Done once the files are persisted again. A table of
-- its own: `sectors` has all the columns diesel's 32-column tables allow.
CREATE TABLE sector_rebuilds (
    miner_id       BIGINT        NOT NULL,
    sector_number  BIGINT        NOT NULL,
    state          VARCHAR(16)   NOT NULL,
    owner          VARCHAR(255)  NULL,
    requested_at   DATETIME      NOT NULL,
    updated_at     DATETIME      NOT NULL,
    rebuilt_at     DATETIME      NULL,
    PRIMARY KEY (miner_id, sector_number)
);
CREATE INDEX sector_rebuilds_state ON sector_rebuilds (miner_id, state, requested_at);
