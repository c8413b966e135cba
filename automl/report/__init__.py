"""After a sweep: leaderboard, results.json, the trials as an Optuna study, plots, importance, HTML report,
the parent run's note."""
