"""Clustering science: PCA -> UMAP -> HDBSCAN pipeline, the fitted model, carry-over matching."""
