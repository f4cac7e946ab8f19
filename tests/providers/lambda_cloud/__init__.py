"""Tests of the Lambda Cloud provider: documented responses, cassettes, contract, properties."""
