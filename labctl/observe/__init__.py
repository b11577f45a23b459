"""Looking inside a running lab: port maps, flow tables and counters, named by the lab."""
