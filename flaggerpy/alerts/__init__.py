"""flaggerpy.alerts."""
