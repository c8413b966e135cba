"""A team's tracking server: MLflow on PostgreSQL (or any database MLflow takes), `automl server`."""
