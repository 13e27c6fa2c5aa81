"""The device daemon."""
