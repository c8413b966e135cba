"""The only Ray Tune + Optuna users: the backend, the trial function and its reporter, trial events, the
durable ledger and the Optuna study in the run folder."""
