"""gpu_providers: GPU cloud clients behind one ``ProviderClient`` protocol.

Not implemented yet: this package is a placeholder until its issue lands.
"""

__all__: list[str] = []
