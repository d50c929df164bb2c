DROP TABLE sched_log;
DROP TABLE pledge_budget;
