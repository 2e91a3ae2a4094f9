"""Listings and their photos: upload and import, staging, decoding, ingest, the listing pages."""
