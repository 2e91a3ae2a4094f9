"""Finding matches: features, indexes, the query engine (engine.py), re-ranking, admission, the API."""
