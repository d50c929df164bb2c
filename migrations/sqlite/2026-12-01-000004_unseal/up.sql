-- Unseal: an operator asks for a piece of a sealed sector back (`util sealer sectors unseal`).
-- One row per (sector, piece): set_up (queued) -> unsealing (a thread has it, owner) ->
-- uploading (the thread asked where to) -> finished or failed (error_info); damocles' states.
-- dest is a JSON list of destinations; the manager's own (upload_secret names it) keeps the
-- bytes in data, at most the 8 MiB the mock market takes for a piece.
CREATE TABLE unseal_tasks (
    miner_id       BIGINT        NOT NULL,
    sector_number  BIGINT        NOT NULL,
    piece_cid      VARCHAR(128)  NOT NULL,
    piece_offset   BIGINT        NOT NULL,
    piece_size     BIGINT        NOT NULL,
    payload_size   BIGINT        NOT NULL,
    dest           TEXT          NOT NULL,
    upload_secret  VARCHAR(64)   NOT NULL,
    state          VARCHAR(16)   NOT NULL,
    owner          VARCHAR(255)  NULL,
    error_info     TEXT          NULL,
    data           BLOB          NULL,
    requested_at   DATETIME      NOT NULL,
    updated_at     DATETIME      NOT NULL,
    finished_at    DATETIME      NULL,
    PRIMARY KEY (miner_id, sector_number, piece_cid)
);
CREATE INDEX unseal_tasks_state ON unseal_tasks (miner_id, state, requested_at);
