"""Shared, dependency-light code used by both the controller and the agent."""
