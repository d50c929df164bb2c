-- Workers as their last ping describes them; one row per worker name.
CREATE TABLE workers (
    name            VARCHAR(255)  NOT NULL PRIMARY KEY,
    dest            VARCHAR(255)  NOT NULL,
    version         VARCHAR(128)  NOT NULL DEFAULT '',
    threads         INTEGER       NOT NULL DEFAULT 0,
    empty_threads   INTEGER       NOT NULL DEFAULT 0,
    paused_threads  INTEGER       NOT NULL DEFAULT 0,
    running_threads INTEGER       NOT NULL DEFAULT 0,
    waiting_threads INTEGER       NOT NULL DEFAULT 0,
    error_threads   INTEGER       NOT NULL DEFAULT 0,
    first_seen_at   DATETIME      NOT NULL,
    last_ping_at    DATETIME      NOT NULL,
    draining        BOOLEAN       NOT NULL DEFAULT FALSE
);

-- One row per sealing thread of a worker, refreshed from pings.
CREATE TABLE worker_threads (
    worker_name   VARCHAR(255)  NOT NULL,
    thread_index  INTEGER       NOT NULL,
    location      VARCHAR(1024) NOT NULL,
    plan          VARCHAR(32)   NOT NULL,
    job_id        VARCHAR(128)  NULL,
    job_state     VARCHAR(64)   NOT NULL DEFAULT '',
    job_stage     VARCHAR(64)   NULL,
    thread_state  VARCHAR(32)   NOT NULL,
    state_since   DATETIME      NOT NULL,
    last_error    TEXT          NULL,
    updated_at    DATETIME      NOT NULL,
    PRIMARY KEY (worker_name, thread_index)
);

-- The mock chain's sectors: allocation, tickets, seeds, commitments and proofs.
CREATE TABLE sectors (
    miner_id         BIGINT        NOT NULL,
    sector_number    BIGINT        NOT NULL,
    proof_type       INTEGER       NOT NULL,
    state            VARCHAR(64)   NOT NULL,
    worker_name      VARCHAR(255)  NULL,
    location         VARCHAR(1024) NULL,
    ticket           VARCHAR(64)   NULL,
    seed             VARCHAR(64)   NULL,
    comm_r           VARCHAR(64)   NULL,
    comm_d           VARCHAR(64)   NULL,
    precommit_state  VARCHAR(32)   NULL,
    persist_store    VARCHAR(255)  NULL,
    proof            TEXT          NULL,
    proof_state      VARCHAR(32)   NULL,
    abort_reason     TEXT          NULL,
    created_at       DATETIME      NOT NULL,
    updated_at       DATETIME      NOT NULL,
    PRIMARY KEY (miner_id, sector_number)
);

-- Next sector number per miner: kept here so a restart never reuses a number.
CREATE TABLE sector_counters (
    miner_id     BIGINT NOT NULL PRIMARY KEY,
    next_number  BIGINT NOT NULL
);

-- Persist stores seen by StoreBasicInfo in mock mode (any name is accepted there).
CREATE TABLE stores (
    name        VARCHAR(255)  NOT NULL PRIMARY KEY,
    path        VARCHAR(1024) NOT NULL,
    created_at  DATETIME      NOT NULL
);

-- Every control action: who did what to which target, and how it ended.
CREATE TABLE audit_log (
    id      INTEGER       NOT NULL PRIMARY KEY AUTOINCREMENT,
    at      DATETIME      NOT NULL,
    actor   VARCHAR(255)  NOT NULL,
    action  VARCHAR(64)   NOT NULL,
    target  VARCHAR(255)  NOT NULL,
    detail  TEXT          NULL,
    result  VARCHAR(1024) NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
