"""After a sweep: leaderboard, results.json, plots, importance, HTML report, the parent run's note."""
