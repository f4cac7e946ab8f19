"""Vast.ai provider tests."""
