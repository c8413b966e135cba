"""The only Ray Tune + Optuna users: the backend, the trial function, trial events, the durable ledger."""
