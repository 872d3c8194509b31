"""Training: the task, and what keeps a run safe and measured around it (backup, records, run folders, CPU, trackers, schedules)."""
