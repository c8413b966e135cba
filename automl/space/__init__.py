"""TAO's schema dialect -> a search space: fields, distributions, relations, grid, search-space files."""
