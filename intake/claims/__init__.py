"""Claims: the service that files and works them, their queries, and their texts."""
