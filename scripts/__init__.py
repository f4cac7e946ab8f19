"""Repository tooling, importable from the repository root (``python -m scripts.<name>``):
``local_server`` (a real SkyPilot 0.14.1 API server, offline on loopback: the harness of the
tests, the demo and the benchmarks), ``demo``, and CI checks such as ``check_plain_install``.
Not part of the installed package."""
