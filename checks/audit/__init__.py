"""Independent audit reference code (the framework module owns this package's real content)."""
