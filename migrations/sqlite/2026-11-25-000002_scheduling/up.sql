-- Sectors an operator pledged to each worker when `[mock] auto_pledge = false`: a new sector
-- takes one.
CREATE TABLE pledge_budget (
    worker_name  VARCHAR(255)  NOT NULL PRIMARY KEY,
    remaining    INTEGER       NOT NULL,
    updated_at   DATETIME      NOT NULL
);

-- Every scheduling decision: a sector or WindowPoSt job granted to a worker, or a refusal and why.
CREATE TABLE sched_log (
    id           INTEGER       NOT NULL PRIMARY KEY AUTOINCREMENT,
    at           DATETIME      NOT NULL,
    worker_name  VARCHAR(255)  NOT NULL,
    thread_index INTEGER       NULL,
    decision     VARCHAR(16)   NOT NULL,
    work         VARCHAR(255)  NOT NULL,
    reason       VARCHAR(255)  NOT NULL
);
CREATE INDEX sched_log_at ON sched_log (at);
