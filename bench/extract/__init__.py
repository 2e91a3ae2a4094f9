"""How fast is feature extraction, and which preprocessing keeps matches?"""
