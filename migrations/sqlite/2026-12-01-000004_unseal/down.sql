DROP TABLE unseal_tasks;
