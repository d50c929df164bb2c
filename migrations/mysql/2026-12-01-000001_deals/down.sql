DROP TABLE deals;
DROP TABLE pieces;
ALTER TABLE sectors DROP COLUMN snap_state;
ALTER TABLE sectors DROP COLUMN snap_owner;
ALTER TABLE sectors DROP COLUMN update_comm_r;
ALTER TABLE sectors DROP COLUMN update_comm_d;
ALTER TABLE sectors DROP COLUMN update_store;
ALTER TABLE sectors DROP COLUMN update_proof;
ALTER TABLE sectors DROP COLUMN upgraded_at;
