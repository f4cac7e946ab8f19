"""Paperspace provider (generated wire client in _generated/)."""
