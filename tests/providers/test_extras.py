"""Optional dependencies: a provider whose extra is missing says which extra to install, and
the extras table agrees with pyproject.toml and with what each provider package imports."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import pytest

from gpu_providers import create_async_provider, create_provider, factory
from gpu_providers._extras import EXTRA_MODULES, missing_modules, require_extra
from gpu_providers.errors import MissingDependencyError, ProviderError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DISTRIBUTION: str = PYPROJECT["project"]["name"]
OPTIONAL: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]


def _forget(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Drop ``package`` and its submodules from sys.modules (restored after the test)."""
    for name in list(sys.modules):
        if name == package or name.startswith(package + "."):
            monkeypatch.delitem(sys.modules, name)


@pytest.mark.parametrize(
    ("provider", "module", "extra"),
    [
        ("runpod", "gql", "runpod"),
        ("runpod", "graphql", "runpod"),
        ("lambdalabs", "attrs", "lambda"),
        ("paperspace", "dateutil", "paperspace"),
    ],
)
@pytest.mark.parametrize("factory_function", [create_provider, create_async_provider])
def test_a_missing_extra_is_named_before_anything_is_imported(
    monkeypatch: pytest.MonkeyPatch,
    factory_function: Any,
    provider: str,
    module: str,
    extra: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what `import module` sees when absent
    package = factory._lookup(provider).sync_class.partition(":")[0]
    _forget(monkeypatch, package)

    with pytest.raises(MissingDependencyError) as caught:
        factory_function(provider, api_key="x")

    error = caught.value
    assert isinstance(error, ProviderError)
    assert isinstance(error, ImportError)
    assert f"pip install 'skypilot-sdk[{extra}]'" in str(error)
    assert (error.extra, error.name) == (extra, module)
    assert error.provider == factory._lookup(provider).name
    assert package not in sys.modules  # the check ran before the provider was imported


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_client_built_directly_names_its_missing_extra(
    monkeypatch: pytest.MonkeyPatch, asynchronous: bool
) -> None:
    from gpu_providers.runpod import AsyncRunPodProvider, RunPodProvider

    monkeypatch.setitem(sys.modules, "gql", None)
    cls: Any = AsyncRunPodProvider if asynchronous else RunPodProvider
    with pytest.raises(MissingDependencyError, match=r"skypilot-sdk\[runpod\]"):
        cls(api_key="x")


def test_installed_extras_pass_the_check() -> None:
    # The dev environment installs every extra: a wrong module name in the table shows here.
    for extra in EXTRA_MODULES:
        assert missing_modules(extra) == []
        require_extra(extra)


def _register(monkeypatch: pytest.MonkeyPatch, entry: factory.ProviderEntry) -> None:
    class Point:
        def load(self) -> object:
            return entry

    def entry_points(*, group: str) -> list[Point]:
        return [Point()]

    monkeypatch.setattr(factory, "entry_points", entry_points)


@pytest.fixture
def provider_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for a provider module written by the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("acme_gpu_provider", None)


@pytest.mark.parametrize(
    ("extra", "imports", "names_extra"),
    [
        (None, "import acme_missing_sdk", False),
        ("runpod", "import acme_missing_sdk", False),  # not a module the extra provides
        ("runpod", "import gql.acme_missing_transport", True),
    ],
)
def test_an_import_that_fails_later_becomes_our_error(
    monkeypatch: pytest.MonkeyPatch,
    provider_module: Path,
    extra: str | None,
    imports: str,
    names_extra: bool,
) -> None:
    (provider_module / "acme_gpu_provider.py").write_text(imports + "\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "acme_missing_sdk", None)
    entry = factory.ProviderEntry(
        name="acme", sync_class="acme_gpu_provider:Sync", async_class="acme_gpu_provider:Async"
    )
    _register(monkeypatch, factory.ProviderEntry(**{**entry.__dict__, "extra": extra}))

    with pytest.raises(MissingDependencyError) as caught:
        create_provider("acme", api_key="x")

    error = caught.value
    assert isinstance(error.__cause__, ModuleNotFoundError)
    assert error.name == error.__cause__.name
    assert error.provider == "acme"
    assert error.extra == (extra if names_extra else None)
    assert ("pip install 'skypilot-sdk[runpod]'" in str(error)) is names_extra


# -- the table against pyproject.toml and the code ------------------------------------------


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match[0]).lower()


def _expand(requirements: list[str]) -> set[str]:
    """Canonical names of ``requirements``, with this project's own extras expanded."""
    names: set[str] = set()
    for requirement in requirements:
        if _name(requirement) == DISTRIBUTION:
            extras = re.search(r"\[([^\]]*)\]", requirement)
            assert extras, requirement
            for extra in extras[1].split(","):
                names |= _expand(OPTIONAL[extra.strip()])
        else:
            names.add(_name(requirement))
    return names


def _imported_top_level(package_dir: Path) -> set[str]:
    """Top-level modules imported (absolute imports) anywhere under ``package_dir``."""
    found: set[str] = set()
    for path in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    return found


def _distributions(module: str) -> set[str]:
    return {_name(dist) for dist in packages_distributions().get(module, [])}


def test_every_builtin_provider_has_an_extra_in_the_table() -> None:
    assert {entry.extra for entry in factory.BUILTIN} == set(EXTRA_MODULES)


@pytest.mark.parametrize("entry", factory.BUILTIN, ids=lambda entry: entry.name)
def test_an_extra_provides_exactly_what_its_provider_imports(entry: factory.ProviderEntry) -> None:
    assert entry.extra is not None
    package = entry.sync_class.partition(":")[0]
    imported = _imported_top_level(ROOT / package.replace(".", "/"))
    base = _expand(PYPROJECT["project"]["dependencies"])
    needs_extra = {
        module
        for module in imported - set(sys.stdlib_module_names) - {"gpu_providers", "skypilot_client"}
        if not _distributions(module) & base
    }
    assert needs_extra == set(EXTRA_MODULES[entry.extra])
    for module in needs_extra:  # ... and pyproject's extra installs each of them
        assert _distributions(module) & _expand(OPTIONAL[entry.extra]), module


def test_the_plain_install_has_no_provider_stack_and_the_umbrella_extras_have_all() -> None:
    provider_requirements = set().union(*(_expand(OPTIONAL[extra]) for extra in EXTRA_MODULES))
    assert not provider_requirements & _expand(PYPROJECT["project"]["dependencies"])
    assert _expand(OPTIONAL["providers"]) == provider_requirements
    assert _expand(OPTIONAL["all"]) == provider_requirements
    assert provider_requirements <= _expand(OPTIONAL["dev"])
