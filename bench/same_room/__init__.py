"""Are other photos of the same room found, and is the similar-look shortlist useful? (simulated, app)"""
