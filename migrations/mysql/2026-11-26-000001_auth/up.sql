-- One token per worker name: only its SHA-256 is kept (hex). A revoked token keeps its row,
-- so `util worker token list` shows when it was revoked; creating a new one replaces it.
CREATE TABLE worker_tokens (
    worker_name  VARCHAR(255)  NOT NULL PRIMARY KEY,
    token_hash   CHAR(64)      NOT NULL,
    created_at   DATETIME      NOT NULL,
    revoked_at   DATETIME      NULL
);
CREATE UNIQUE INDEX worker_tokens_hash ON worker_tokens (token_hash);

-- Who may act on a sector: the worker whose token allocated it (NULL: a caller without a
-- token, under `[auth] workers = "optional"`).
ALTER TABLE sectors ADD COLUMN owner VARCHAR(255) NULL;

-- Room kept in a persist store for a sector between StoreReserveSpace and its persisting (or
-- its abort).
CREATE TABLE store_reservations (
    miner_id       BIGINT        NOT NULL,
    sector_number  BIGINT        NOT NULL,
    store_name     VARCHAR(255)  NOT NULL,
    bytes          BIGINT        NOT NULL,
    created_at     DATETIME      NOT NULL,
    PRIMARY KEY (miner_id, sector_number)
);
