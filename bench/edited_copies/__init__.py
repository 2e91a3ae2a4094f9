"""Is an edited copy of a stored photo found, and at which level? (near_duplicates, through the app)"""
