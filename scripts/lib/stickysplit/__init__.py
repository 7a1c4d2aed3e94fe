"""Helpers shared by the demo, the split validator and the integration tests."""
