"""Stage 3, features: the feature table, the embedding cache, k-shot splits, the catalog."""
