"""``flaggerpy demo``: a complete canary release on the embedded sandbox, shown live, in one command."""
