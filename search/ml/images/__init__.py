"""Images: safe decoding, normalisation, hashes, loading for encoders, synthetic edits."""
