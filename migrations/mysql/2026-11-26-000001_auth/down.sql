DROP TABLE store_reservations;
ALTER TABLE sectors DROP COLUMN owner;
DROP TABLE worker_tokens;
