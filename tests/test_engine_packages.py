"""The engine's shape: feature packages that say what they own, few loose modules, no reaching
into another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "queue_admin_gui"
CORE = PACKAGE / "core"
#: At most this many modules stay loose in core/ (the rest belong to a feature package).
MAX_LOOSE_MODULES = 12
#: Private names of other libraries the package has no public way around: argparse lists a
#: parser's sub-commands only through ``parser._actions`` and ``argparse._SubParsersAction``.
OTHER_LIBRARIES_PRIVATE = {"_actions", "_SubParsersAction"}
FEATURE_PACKAGES = sorted(path.parent.name for path in CORE.glob("*/__init__.py"))


def test_core_keeps_at_most_a_dozen_loose_modules() -> None:
    loose = sorted(path.stem for path in CORE.glob("*.py") if path.name != "__init__.py")
    assert len(loose) <= MAX_LOOSE_MODULES, f"{len(loose)} loose modules in core/: {loose}"


@pytest.mark.parametrize("package", FEATURE_PACKAGES)
def test_each_feature_package_says_what_it_owns_and_may_use(package: str) -> None:
    docstring = ast.get_docstring(ast.parse((CORE / package / "__init__.py").read_text(
        encoding="utf-8"))) or ""
    assert docstring, f"core/{package}/__init__.py has no docstring"
    words = " ".join(docstring.lower().split())
    assert "may use" in words, (
        f"core/{package}/__init__.py does not say what it may use")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _project_files() -> list[Path]:
    return sorted([*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py")])


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``from ... import`` reads, as far as the file's place tells."""
    if not node.level:
        return node.module or ""
    base = _module_name(path).split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_reaches(path: Path) -> list[str]:
    """``from m import _name`` and ``module._name`` of another project module, in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    project_modules = {_module_name(file) for file in _project_files()}
    short_names = {name.rsplit(".", 1)[-1] for name in project_modules}
    module_aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            source = _resolve(path, node)
            in_project = (source.startswith(("queue_admin_gui", "tests")) or node.level > 0
                          or source.split(".")[0] in short_names)
            if not in_project:
                continue
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(f"line {node.lineno}: from {source} import {alias.name}")
                elif f"{source}.{alias.name}" in project_modules:
                    module_aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("queue_admin_gui.") and alias.asname:
                    module_aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _is_private(node.attr)
                and isinstance(node.value, ast.Name) and node.value.id in module_aliases):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


@pytest.mark.slow
def test_no_module_imports_or_reads_another_modules_private_names() -> None:
    """A name starting with ``_`` belongs to its module: others get a public name or method.

    Checked over the package and the tests: ``from m import _name`` and ``m._name`` where
    ``m`` is a project module. (Attributes of objects, ``obj._field``, are the next test's.)
    """
    offenders = {str(path.relative_to(ROOT)): found for path in _project_files()
                 if (found := _private_reaches(path))}
    assert not offenders, f"private names used across modules: {offenders}"


def _defined_private_names(tree: ast.Module) -> set[str]:
    """The private names a module defines: its functions, classes, module and class names,
    and the attributes it sets on ``self`` or ``cls``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
              and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            names.add(node.attr)
    return {name for name in names if _is_private(name)}


def _foreign_private_attributes(path: Path) -> list[str]:
    """``obj._name`` in ``path`` where ``obj`` is not ``self``/``cls`` and the module does not
    define ``_name`` itself: a private attribute of an object another module owns."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = _defined_private_names(tree)
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _is_private(node.attr)
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                and node.attr not in own and node.attr not in OTHER_LIBRARIES_PRIVATE):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_reads_private_attributes_of_objects_another_module_owns() -> None:
    """An object's private fields and methods are its own module's: others use its public ones.

    Checked over the package (the archiver's cursor, for one, is owned by ``Archiver`` alone:
    generations and the checkpoint door use its public methods). A module may read private
    names it defines itself on other instances (``other._field`` in the class's own module).
    """
    offenders = {str(path.relative_to(ROOT)): found for path in sorted(PACKAGE.rglob("*.py"))
                 if (found := _foreign_private_attributes(path))}
    assert not offenders, f"private attributes of other modules' objects: {offenders}"
