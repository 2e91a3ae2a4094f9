"""Matching: levels from hashes and verified local features, geometry, similar-look re-ranking."""
