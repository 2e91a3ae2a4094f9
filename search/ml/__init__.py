"""Pure ML code for search (torch, numpy, faiss, ...): never import Django, Celery or Channels here."""
