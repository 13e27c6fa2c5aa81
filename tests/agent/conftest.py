"""Fixtures for agent tests; the implementations live in tests/agents.py (shared with other suites)."""

from agents import digits_model, start_agent

__all__ = ["digits_model", "start_agent"]
