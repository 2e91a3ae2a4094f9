"""Image encoders: the Encoder interface (base), the built-in CNNs (builtin), the registry."""
