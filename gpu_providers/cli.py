"""``gpu-providers``: offers, instances, orphans, launch, terminate and wait, at a terminal.

Tables by default, ``--json`` for scripts. Keys come from where the library finds them
(``LAMBDA_API_KEY``, ``PAPERSPACE_API_KEY``, ``RUNPOD_API_KEY``, ``TENSORDOCK_API_TOKEN``,
``VAST_API_KEY``, then the vendor tools' files); no key is ever printed. Only the standard
library is imported at start-up: the package is imported when a command runs, so
``gpu-providers --help`` starts fast.

Exit codes: 0 ok; 1 failed (a provider error, or every provider asked failed);
2 usage error (bad arguments, checked before any network call); 3 partial (some providers
failed, the others' results are shown); 4 a launch whose outcome is unknown (it may have
created a billed instance: check ``instances``); 5 ``wait`` ended without a ready instance;
6 ``orphans --terminate`` left instances not proven gone; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_MAYBE_LAUNCHED = 4
EXIT_NOT_READY = 5
EXIT_NOT_GONE = 6
EXIT_INTERRUPTED = 130

_EPILOG = """exit codes: 0 ok, 1 failed, 2 usage error, 3 partial (some providers failed),
4 launch outcome unknown (may be billing: check `instances`), 5 not ready after wait,
6 orphans left that are not proven gone, 130 interrupted.

keys: LAMBDA_API_KEY, PAPERSPACE_API_KEY, RUNPOD_API_KEY, TENSORDOCK_API_TOKEN,
VAST_API_KEY (or the vendor tools' files); without keys, `offers` still asks the public
catalogs (RunPod, Vast.ai)."""


class UsageError(Exception):
    """Bad input found before anything was sent (exit code 2)."""


# -- arguments ------------------------------------------------------------------------------


def _label(text: str) -> tuple[str, str]:
    from .labels import parse_label

    try:
        return parse_label(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _endpoint(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or not name or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError("write it as PROVIDER=URL (http:// or https://)")
    return name.strip().lower(), url


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    """The argument parser (standard library only)."""
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    common.add_argument(
        "--timeout", type=_positive, default=None, help="seconds each provider gets"
    )
    common.add_argument(
        "--endpoint",
        type=_endpoint,
        action="append",
        default=[],
        metavar="PROVIDER=URL",
        help="send PROVIDER's calls to URL (a proxy or a test server)",
    )
    common.add_argument(
        "--runpod-api",
        choices=("graphql", "rest"),
        default=None,
        help="RunPod's API: graphql (default until RunPod retires it) or rest (REST v2)",
    )
    many = _Parser(add_help=False)
    many.add_argument(
        "--provider",
        action="append",
        default=None,
        help="ask only this provider (repeatable; default: every provider with a key)",
    )
    one = _Parser(add_help=False)
    one.add_argument("--provider", required=True, help="the provider (lambda, runpod, ...)")

    top = _Parser(
        prog="gpu-providers",
        description="GPU clouds from one command line: compare offers, list and reconcile "
        "instances, launch, terminate, wait.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    offers = commands.add_parser(
        "offers", parents=[common, many], help="offers of every provider, cheapest first"
    )
    offers.add_argument("--gpu", action="append", help="GPU type (H100, A100-80GB, ...)")
    offers.add_argument("--count", type=_count, default=None, help="exactly this many GPUs")
    offers.add_argument(
        "--max-price", type=_positive, default=None, help="USD per GPU-hour paid, at most"
    )
    offers.add_argument("--spot", action="store_true", help="spot offers only (default: none)")
    offers.add_argument("--region", action="append", help="only these regions")
    offers.add_argument(
        "--all", action="store_true", help="include offers without capacity right now"
    )

    instances = commands.add_parser(
        "instances", parents=[common, many], help="instances of every provider"
    )
    instances.add_argument(
        "--label", type=_label, action="append", default=[], metavar="K=V", help="label filter"
    )
    instances.add_argument("--name-prefix", default=None, help="names starting with this")

    orphans = commands.add_parser(
        "orphans", parents=[common, many], help="instances with your labels you do not know"
    )
    orphans.add_argument(
        "--known-file", default=None, help="ids you know, one a line (id or provider:id)"
    )
    orphans.add_argument(
        "--label",
        type=_label,
        action="append",
        default=[],
        metavar="K=V",
        help="labels that mark yours (default: managed-by=gpu-providers)",
    )
    orphans.add_argument("--terminate", action="store_true", help="terminate them")
    orphans.add_argument("--yes", action="store_true", help="do not ask before terminating")

    launch = commands.add_parser("launch", parents=[common, one], help="launch one instance")
    launch.add_argument("--gpu", required=True, help="GPU type (H100, A100-80GB, ...)")
    launch.add_argument("--count", type=_count, default=1)
    launch.add_argument("--region", default=None)
    launch.add_argument("--image", default=None)
    launch.add_argument("--name", default=None)
    launch.add_argument("--label", type=_label, action="append", default=[], metavar="K=V")
    launch.add_argument(
        "--no-managed-label",
        action="store_true",
        help="do not add managed-by=gpu-providers (then `orphans` will not see it)",
    )
    launch.add_argument("--ssh-key-name", action="append", default=[])
    launch.add_argument("--ssh-public-key-file", default=None)
    launch.add_argument("--spot", action="store_true")
    launch.add_argument("--disk-gb", type=_count, default=None)

    terminate = commands.add_parser("terminate", parents=[common, one], help="terminate instances")
    terminate.add_argument("instance_ids", nargs="+", metavar="ID")

    wait = commands.add_parser(
        "wait", parents=[common, one], help="wait until an instance is ready"
    )
    wait.add_argument("instance_id", metavar="ID")
    wait.add_argument(
        "--for", dest="wait_for", type=_positive, default=600.0, help="seconds (default 600)"
    )
    return top


# -- output ---------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain aligned text (numbers right-aligned)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [
        bool(rows) and all(isinstance(r[i], (int, float)) or r[i] is None for r in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(headers), *(line(r) for r in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):  # cents, or four places for small rates
        return f"{value:.2f}" if value == 0 or abs(value) >= 0.1 else f"{value:.4f}"
    return str(value)


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class _ProgressLine:
    """Which providers are still being asked, on one stderr line (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.pending: list[str] = []
        self.finished = 0

    def __call__(self, event: Any) -> None:
        if not self.enabled:
            return
        if event.state == "started":
            self.pending.append(event.provider)
        else:
            if event.provider in self.pending:
                self.pending.remove(event.provider)
            self.finished += 1
        total = self.finished + len(self.pending)
        waiting = ", ".join(self.pending) or "done"
        sys.stderr.write(f"\r\033[Kasking providers {self.finished}/{total}: {waiting}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and (self.finished or self.pending):
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _report_providers(failures: Sequence[Any], skipped: Sequence[Any]) -> None:
    for failure in failures:
        print(f"{failure.provider}: failed ({failure.error}): {failure.reason}", file=sys.stderr)
    for skip in skipped:
        print(f"{skip.provider}: not asked: {skip.reason}", file=sys.stderr)


def _emit(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _status_code(answered: int, failures: Sequence[Any]) -> int:
    if failures and not answered:
        return EXIT_FAILED
    return EXIT_PARTIAL if failures else EXIT_OK


# -- commands -------------------------------------------------------------------------------


def _options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = {}
    from .factory import _lookup

    for name, url in args.endpoint:
        try:
            options.setdefault(_lookup(name).name, {})["base_url"] = url
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.runpod_api is not None:
        options.setdefault("runpod", {})["api"] = args.runpod_api
    return options


def _providers(args: argparse.Namespace) -> list[str] | None:
    if not args.provider:
        return None
    from .factory import _lookup

    names = [args.provider] if isinstance(args.provider, str) else args.provider
    try:
        return [_lookup(p).name for p in names]
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _timeout(args: argparse.Namespace, default: float) -> float:
    return float(args.timeout) if args.timeout is not None else default


def cmd_offers(args: argparse.Namespace, progress: _ProgressLine) -> int:
    from .search import OfferCache, search_offers
    from .types import GPUFilters

    try:
        filters = GPUFilters(
            gpu_types=args.gpu,
            min_gpu_count=args.count or 1,
            max_gpu_count=args.count,
            regions=args.region,
            max_price_per_gpu=args.max_price,
            spot=bool(args.spot),
            available_only=not args.all,
        )
    except ValueError as exc:
        raise UsageError(_first_error(exc)) from None
    found = search_offers(
        filters,
        _providers(args),
        timeout=_timeout(args, 20.0),
        cache=OfferCache(ttl=0),
        provider_options=_options(args),
        on_progress=progress,
    )
    progress.close()
    if args.json:
        _emit(found.model_dump(mode="json"))
    else:
        rows = [
            (
                r.offer.provider,
                r.offer.gpu_type,
                r.offer.gpu_count,
                _money(r.price_per_gpu_hour),
                _money(sum(r.components.values()) if r.components else None),
                "spot" if r.offer.spot else "on-demand",
                r.offer.region,
                "yes" if r.offer.available else "no",
                r.offer.offer_id,
            )
            for r in found.offers
        ]
        headers = ("PROVIDER", "GPU", "N", "$/GPU-H", "$/H", "KIND", "REGION", "NOW", "OFFER")
        print(table(headers, rows) if rows else "no offers match")
        _report_providers(found.failures, found.skipped)
    return _status_code(len(found.answered), found.failures)


def _instance_rows(instances: Sequence[Any]) -> str:
    rows = [
        (
            i.provider,
            i.instance_id,
            i.name,
            i.state.value,
            i.gpu_type,
            i.gpu_count,
            _money(i.hourly_price),
            i.region,
            ",".join(f"{k}={v}" for k, v in sorted(i.labels.items())) or None,
        )
        for i in instances
    ]
    headers = ("PROVIDER", "ID", "NAME", "STATE", "GPU", "N", "$/H", "REGION", "LABELS")
    return table(headers, rows)


def cmd_instances(args: argparse.Namespace, progress: _ProgressLine) -> int:
    from ._fanout import plan, run_sync

    labels = dict(args.label)
    targets, skipped, failures = plan(
        _providers(args), asynchronous=False, keyless=False, options=_options(args)
    )
    outcome = run_sync(
        targets,
        lambda t: t.client.list_instances(args.name_prefix, labels=labels),
        timeout=_timeout(args, 30.0),
        on_progress=progress,
    )
    progress.close()
    failures = sorted(failures + outcome.failures, key=lambda f: f.provider)
    instances = [i for _, found in outcome.results for i in found]
    instances.sort(key=lambda i: (i.provider, i.name or "", i.instance_id))
    if args.json:
        _emit(
            {
                "instances": [i.model_dump(mode="json") for i in instances],
                "failures": [f.model_dump(mode="json") for f in failures],
                "skipped": [s.model_dump(mode="json") for s in skipped],
            }
        )
    else:
        print(_instance_rows(instances) if instances else "no instances")
        _report_providers(failures, skipped)
    return _status_code(len(outcome.results), failures)


def _read_known(path: str | None) -> list[str]:
    if path is None:
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def cmd_orphans(args: argparse.Namespace, progress: _ProgressLine) -> int:
    from .labels import MANAGED_BY
    from .orphans import find_orphans, terminate_orphans

    known = _read_known(args.known_file)
    labels = dict(args.label) or dict(MANAGED_BY)
    if args.terminate and not args.yes and not sys.stdin.isatty():
        raise UsageError("--terminate without --yes needs a terminal to ask on")
    options = _options(args)
    found = find_orphans(
        known,
        labels,
        _providers(args),
        timeout=_timeout(args, 30.0),
        provider_options=options,
        on_progress=progress,
    )
    progress.close()
    code = _status_code(len(found.checked), found.failures)
    if not args.terminate:
        if args.json:
            _emit(found.model_dump(mode="json"))
        else:
            _print_orphans(found)
        return code
    if not args.json:
        _print_orphans(found)
    if not found.orphans:
        if args.json:
            _emit({"found": found.model_dump(mode="json"), "terminated": None})
        return code
    if not args.yes:
        # The question goes to stderr: stdout stays clean for --json.
        sys.stderr.write(f"terminate these {len(found.orphans)} instances? [y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing terminated", file=sys.stderr)
            return code
    done = terminate_orphans(
        found,
        dry_run=False,
        providers=_providers(args),
        timeout=_timeout(args, 120.0),
        provider_options=options,
    )
    if args.json:
        _emit({"found": found.model_dump(mode="json"), "terminated": done.model_dump(mode="json")})
    else:
        rows = [
            (o.provider, o.instance_id, o.name, o.action, "yes" if o.gone else "no", o.reason)
            for o in done.outcomes
        ]
        print(table(("PROVIDER", "ID", "NAME", "ACTION", "GONE", "NOTE"), rows))
    return code if done.all_gone else EXIT_NOT_GONE


def _print_orphans(found: Any) -> None:
    labels = ",".join(f"{k}={v}" for k, v in sorted(found.labels.items()))
    if not found.orphans:
        print(f"no orphans with {labels}")
    else:
        rows = [
            (
                o.source,
                o.instance.instance_id,
                o.instance.name,
                o.instance.state.value,
                None if o.age_seconds is None else round(o.age_seconds / 3600.0, 1),
                _money(o.instance.hourly_price),
                _money(o.cost_so_far),
            )
            for o in found.orphans
        ]
        headers = ("PROVIDER", "ID", "NAME", "STATE", "AGE-H", "$/H", "$-SO-FAR")
        print(table(headers, rows))
    _report_providers(found.failures, found.skipped)


def _client(args: argparse.Namespace) -> Any:
    from .factory import create_provider

    name = (_providers(args) or [""])[0]
    options = dict(_options(args).get(name, {}))
    if args.timeout is not None:
        options["timeout"] = args.timeout  # per HTTP call
    return create_provider(name, **options)


def cmd_launch(args: argparse.Namespace, progress: _ProgressLine) -> int:
    from .labels import MANAGED_BY
    from .types import LaunchRequest

    labels = {} if args.no_managed_label else dict(MANAGED_BY)
    labels.update(dict(args.label))
    public_key = None
    if args.ssh_public_key_file:
        try:
            with open(args.ssh_public_key_file, encoding="utf-8") as handle:
                public_key = handle.read().strip()
        except OSError as exc:
            raise UsageError(f"cannot read {args.ssh_public_key_file}: {exc.strerror}") from None
    try:
        request = LaunchRequest(
            gpu_type=args.gpu,
            gpu_count=args.count,
            region=args.region,
            image=args.image,
            name=args.name,
            labels=labels,
            ssh_key_names=args.ssh_key_name,
            ssh_public_key=public_key,
            spot=args.spot,
            disk_gb=args.disk_gb,
        )
    except ValueError as exc:
        raise UsageError(_first_error(exc)) from None
    with _client(args) as client:
        instance = client.launch_instance(request)
    if args.json:
        _emit(instance.model_dump(mode="json"))
    else:
        print(_instance_rows([instance]))
    return EXIT_OK


def cmd_terminate(args: argparse.Namespace, progress: _ProgressLine) -> int:
    from .errors import ProviderError

    results = []
    code = EXIT_OK
    with _client(args) as client:
        for instance_id in args.instance_ids:
            try:
                client.terminate_instance(instance_id)
            except ProviderError as exc:
                results.append({"instance_id": instance_id, "ok": False, "error": exc.message})
                code = EXIT_FAILED
            else:
                results.append({"instance_id": instance_id, "ok": True, "error": None})
    if args.json:
        _emit({"provider": client.name, "results": results})
    else:
        rows = [
            (r["instance_id"], "terminate requested" if r["ok"] else "failed", r["error"])
            for r in results
        ]
        print(table(("ID", "RESULT", "ERROR"), rows))
    return code


def cmd_wait(args: argparse.Namespace, progress: _ProgressLine) -> int:
    with _client(args) as client:
        status = client.wait_until_ready(args.instance_id, timeout=args.wait_for)
    if args.json:
        _emit(status.model_dump(mode="json"))
    else:
        where = f"{status.public_ip}:{status.ssh_port}" if status.public_ip else "-"
        print(f"{status.instance_id} ready ({status.state.value}) ssh {where}")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, _ProgressLine], int]] = {
    "offers": cmd_offers,
    "instances": cmd_instances,
    "orphans": cmd_orphans,
    "launch": cmd_launch,
    "terminate": cmd_terminate,
    "wait": cmd_wait,
}


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc)


def _failure_code(exc: BaseException) -> int:
    from .errors import (
        InstanceNotReadyError,
        InvalidRequestError,
        UnsupportedFeatureError,
        WaitTimeoutError,
    )

    if getattr(exc, "maybe_submitted", False):
        return EXIT_MAYBE_LAUNCHED
    if isinstance(exc, (WaitTimeoutError, InstanceNotReadyError)):
        return EXIT_NOT_READY
    refused_here = getattr(exc, "status_code", None) is None and getattr(exc, "body", None) is None
    if isinstance(exc, (InvalidRequestError, UnsupportedFeatureError)) and refused_here:
        return EXIT_USAGE  # the client refused it before sending (no vendor answer)
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = parser().parse_args(argv)
    progress = _ProgressLine(enabled=sys.stderr.isatty() and os.environ.get("TERM") != "dumb")
    try:
        return COMMANDS[args.command](args, progress)
    except UsageError as exc:
        progress.close()
        print(f"gpu-providers: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        progress.close()
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from .errors import ProviderError

        progress.close()
        if not isinstance(exc, ProviderError):
            raise
        print(f"gpu-providers: {type(exc).__name__}: {exc.message}", file=sys.stderr)
        if exc.maybe_submitted:
            print(
                "the launch may have created an instance (and it may be billing): "
                + (
                    f"id {exc.instance_id}"
                    if exc.instance_id
                    else "run `gpu-providers instances` to find it"
                ),
                file=sys.stderr,
            )
        return _failure_code(exc)


#: Commands that only read: once they have printed, calls still running past their deadline
#: are abandoned (the process exits without joining their threads).
_READ_ONLY = frozenset({"offers", "instances"})


def run() -> NoReturn:
    """Console-script entry point."""
    argv = sys.argv[1:]
    code = main(argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    if command in _READ_ONLY or (command == "orphans" and "--terminate" not in argv):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
