"""``python -m gpu_providers``: the ``gpu-providers`` command line."""

from .cli import run

run()
