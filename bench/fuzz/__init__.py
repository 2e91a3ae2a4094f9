"""Does ingest survive malformed images without crashing or leaking?"""
