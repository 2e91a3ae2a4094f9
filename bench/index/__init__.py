"""Which vector index (exact flat or HNSW) at which collection size?"""
