"""RunPod provider tests: documented GraphQL responder, cassettes, mapping, properties, contract."""
