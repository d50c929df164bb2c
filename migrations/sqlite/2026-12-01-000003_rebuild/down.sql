DROP TABLE sector_rebuilds;
