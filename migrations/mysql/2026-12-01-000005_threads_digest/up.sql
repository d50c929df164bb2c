-- What the threads of a worker's last written ping were, so that a ping repeating them writes only the worker's row (see db/workers.rs).
ALTER TABLE workers ADD COLUMN threads_digest BIGINT NULL;
