"""The model registry: versioned models and their artifacts (blob store now; database to come)."""
