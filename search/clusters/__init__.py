"""Clustering runs, moderator actions and their carry-over, provisional assignment, the review pages."""
