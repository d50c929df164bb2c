ALTER TABLE workers DROP COLUMN threads_digest;
