"""flaggerpy.routing."""
