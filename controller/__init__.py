"""The workstation side of jetfleet."""
