"""The MLflow UI: the server, its guard process, sweep links, a headless-browser check."""
