"""The shared runner of cronfleet Schedules."""
