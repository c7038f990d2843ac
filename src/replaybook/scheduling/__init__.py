"""Cron schedules: which slots are due (`slots`, pure) and the component that fires
them exactly once through the Engine (`scheduler`)."""
