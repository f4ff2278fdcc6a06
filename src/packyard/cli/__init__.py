"""The `packyard` command: server verbs (init, serve) and, later, client verbs."""
