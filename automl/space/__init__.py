"""TAO's schema dialect -> a search space: schema fields, Param (the adapter onto Optuna's distributions),
relations, the space, grid, search-space files."""
