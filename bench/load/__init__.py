"""How does the app hold up with 50 realtors uploading and searching at once?"""
