"""The `rag` command: on top of `rag`, `api` and `eval`."""
