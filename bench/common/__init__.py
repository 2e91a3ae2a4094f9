"""Helpers shared by several benches: paths, the app under test, the matcher's cached evidence."""
