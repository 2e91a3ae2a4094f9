"""Which clustering pipeline groups photos by room type, and how does it scale?"""
