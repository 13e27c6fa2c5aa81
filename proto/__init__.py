"""Protocol messages."""
