"""Paperspace provider tests: documented responder, cassettes, mapping, properties, contract."""
