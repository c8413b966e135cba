"""Search efficiency: can the search algorithms be told apart on a task where settings matter?

    make bench-search                                  # = python -m bench.search_efficiency
    python -m bench.search_efficiency --budget 24 --seeds 0 1 2 3 4 5 6 7 8 9 [--jobs 2]
    python -m bench.search_efficiency --analyze-only   # tables + plot again from the finished sweeps

Task (task.py): the tiny-demo network, pre-trained on small-disparity synthetic pairs, fine-tuned on
larger-disparity ones (24 steps, lr milestones at 12 and 18) over a 7-parameter space (space.yaml).
Compared at equal compute in trial-epochs (algorithms.py): TPE + ASHA (our default), TPE without early
stopping, random + ASHA, random without early stopping, GP sequential, and Optuna alone in one process.
Reported (analysis.py, plot.py): the spread of 30 random settings; median and IQR of the best val EPE at
25/50/100 % of the budget; P(beats random search) over seed pairs; trial-epochs to reach random search's
median final best; anytime curves; wall time per algorithm.
"""
