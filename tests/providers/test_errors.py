"""The class tree at the top of gpu_providers/errors.py is the real hierarchy, complete."""

from __future__ import annotations

import re

from gpu_providers import errors


def _tree() -> dict[str, str]:
    """Each class of the docstring tree -> the parent the tree shows it under."""
    lines = (errors.__doc__ or "").splitlines()
    root = lines.index("    ProviderError")
    parents: dict[str, str] = {}
    for line in lines[root + 1 :]:
        if "──" not in line:
            break
        chain = line.split("──", 1)[1].split("(", 1)[0]  # drop "(also a ValueError)" notes
        names = re.findall(r"\w+", chain)
        for parent, child in zip(["ProviderError", *names[:-1]], names, strict=True):
            parents[child] = parent
    return parents


def test_the_docstring_tree_lists_every_error_class_under_its_parent() -> None:
    classes = {
        name: value
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.ProviderError)
    }
    tree = _tree()
    assert set(tree) == set(classes) - {"ProviderError"}
    for child, parent in tree.items():
        assert classes[parent] in classes[child].__bases__, (child, parent)
    assert set(classes) <= set(errors.__all__)
