"""Command line: ``python -m codegen [PROVIDER ...] [--check] [--spec PATH]``.

PROVIDER is lambda, paperspace, runpod, runpod-rest (RunPod's REST v2 backend),
tensordock or vastai (all when none is named).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from . import PINNED, PROVIDERS, CodegenError
from ._pipeline import (
    default_spec,
    diff_trees,
    display,
    generate_openapi,
    generate_runpod,
    install,
    require_generators,
    target_dir,
)
from .vendor_spec import prepare


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m codegen",
        description=(
            "Regenerate the provider clients in gpu_providers/<provider>/_generated/ from "
            "specs/ (all providers when none is named)."
        ),
        epilog=(
            "Generators (pinned): "
            + ", ".join(f"{name}=={version}" for name, version in PINNED.items())
            + ". Exit status: 0 ok, 1 drift found by --check, 2 usage or generator error."
        ),
    )
    parser.add_argument(
        "providers",
        nargs="*",
        metavar="PROVIDER",
        help=f"one or more of: {', '.join(PROVIDERS)}",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="generate into a scratch directory and fail (exit 1) if the committed code differs",
    )
    parser.add_argument(
        "--spec",
        type=Path,
        metavar="PATH",
        help=(
            "generate from this vendor OpenAPI document (JSON or YAML) instead of specs/; "
            "needs exactly one provider (lambda). The document is cut to the operations "
            "specs/lambda/openapi.yaml uses and gets the same relaxations."
        ),
    )
    return parser


def _generate(provider: str, scratch: Path, spec: Path | None) -> Path:
    if provider == "runpod":
        if spec is not None:
            raise CodegenError("--spec is not supported for runpod: edit specs/runpod/")
        return generate_runpod(scratch)
    ours = default_spec(provider)
    if spec is None:
        return generate_openapi(provider, ours, scratch, display(ours))
    source = f"{spec.name} (cut to the operations in {display(ours)} by --spec)"
    return generate_openapi(provider, prepare(provider, spec, ours, scratch), scratch, source)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    providers: list[str] = list(dict.fromkeys(args.providers)) or list(PROVIDERS)
    unknown = [p for p in providers if p not in PROVIDERS]
    if unknown:
        print(f"unknown provider(s) {', '.join(unknown)}; choose from {', '.join(PROVIDERS)}")
        return 2
    if args.spec is not None and len(providers) != 1:
        print("--spec needs exactly one provider, e.g. `python -m codegen lambda --spec PATH`")
        return 2
    try:
        require_generators(providers)
        drifted: list[str] = []
        diffs: list[str] = []
        for provider in providers:
            started = time.monotonic()
            with tempfile.TemporaryDirectory(prefix=f"codegen-{provider}-") as tmp:
                fresh = _generate(provider, Path(tmp), args.spec)
                target = target_dir(provider)
                if args.check:
                    drift, diff = diff_trees(fresh, target)
                    drifted.extend(drift)
                    if diff:
                        diffs.append(diff)
                    state = f"{len(drift)} file(s) differ" if drift else "up to date"
                else:
                    install(fresh, target)
                    state = f"wrote {display(target)}"
            print(f"codegen {provider}: {state} ({time.monotonic() - started:.1f}s)")
    except CodegenError as exc:
        print(f"codegen: error: {exc}", file=sys.stderr)
        return 2
    if drifted:
        print("\nGenerated code differs from the specs (run `python -m codegen` and commit):")
        for line in drifted:
            print(f"  {line}")
        if diffs:
            print("\n" + "\n".join(diffs))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
