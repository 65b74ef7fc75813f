"""flaggerpy.apis."""
