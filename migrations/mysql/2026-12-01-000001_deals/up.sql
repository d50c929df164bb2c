-- The mock market: each imported deal, waiting for a sector until AcquireDeals or a snap-up
-- takes it (state Waiting -> Assigned -> Active once its sector is proven or snapped; back to
-- Waiting when that sector is aborted). A deal is in at most one sector.
CREATE TABLE deals (
    deal_id        BIGINT        NOT NULL PRIMARY KEY,
    miner_id       BIGINT        NOT NULL,
    piece_cid      VARCHAR(128)  NOT NULL,
    piece_size     BIGINT        NOT NULL,
    payload_size   BIGINT        NOT NULL,
    client         VARCHAR(64)   NOT NULL,
    start_epoch    BIGINT        NOT NULL,
    end_epoch      BIGINT        NOT NULL,
    price          VARCHAR(64)   NOT NULL,
    state          VARCHAR(16)   NOT NULL,
    sector_number  BIGINT        NULL,
    piece_offset   BIGINT        NULL,
    created_at     DATETIME      NOT NULL,
    updated_at     DATETIME      NOT NULL
);
CREATE INDEX deals_waiting ON deals (miner_id, state, deal_id);
CREATE INDEX deals_sector ON deals (miner_id, sector_number);

-- The piece store: a deal's bytes as the client gave them (not padded), by piece CID. Kept in
-- the database, so every manager of a cluster serves the same pieces.
CREATE TABLE pieces (
    piece_cid     VARCHAR(128)  NOT NULL PRIMARY KEY,
    payload       MEDIUMBLOB    NOT NULL,
    created_at    DATETIME      NOT NULL
);

-- Snap-up: a proven CC sector becomes a Candidate (util sealer snap fetch), is Allocated to
-- one worker with its deals, and is Done once its update proof is verified; the update's
-- commitments and store are then what WindowPoSt proves.
ALTER TABLE sectors ADD COLUMN snap_state VARCHAR(16) NULL;
ALTER TABLE sectors ADD COLUMN snap_owner VARCHAR(255) NULL;
ALTER TABLE sectors ADD COLUMN update_comm_r VARCHAR(64) NULL;
ALTER TABLE sectors ADD COLUMN update_comm_d VARCHAR(64) NULL;
ALTER TABLE sectors ADD COLUMN update_store VARCHAR(255) NULL;
ALTER TABLE sectors ADD COLUMN update_proof TEXT NULL;
ALTER TABLE sectors ADD COLUMN upgraded_at DATETIME NULL;
