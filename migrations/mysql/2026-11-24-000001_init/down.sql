DROP TABLE audit_log;
DROP TABLE stores;
DROP TABLE sector_counters;
DROP TABLE sectors;
DROP TABLE worker_threads;
DROP TABLE workers;
