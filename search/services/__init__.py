"""Services: every write of the search app goes through here."""
