"""The app at collection scale: N photos built through the app's own models, services and index code."""
