"""Training: the task, and what keeps a run safe and measured around it (the backup, the
records, the run folder's lock, the CPU's share, the trackers, the schedules)."""
