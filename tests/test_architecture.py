"""The layout of packages is the pipeline, and stays so: each layer imports only the layers below it.

model -> compile -> db -> ops -> engines -> the public API (``sqlnet``) and the CLI; ``sqlnet.errors`` is below
everything; ``sqlnet.bench`` may use anything but nothing imports it. Every import counts, also
those inside functions and under TYPE_CHECKING: a cycle hidden in a function is a cycle all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "sqlnet"

# the rank of each layer: a module may import modules of its own rank or lower ranks
# sqlnet.sklearn and sqlnet.sqlalchemy are the public API for those libraries' users: beside sqlnet itself
RANKS = {
    "errors": 0, "model": 1, "compile": 2, "db": 3, "ops": 4, "engines": 5, "": 6, "sklearn": 6, "sqlalchemy": 6,
    "cli": 7, "bench": 8,
}  # fmt: skip
MAX_LINES = 500


def layer(module: str) -> str:
    """sqlnet.compile.wide -> compile; sqlnet -> '' (the public API)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sqlnet_imports(path: Path) -> set[str]:
    """Every sqlnet module this file imports (``from sqlnet.x import y`` counts y when it is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "sqlnet"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sqlnet":
            found.add(node.module)
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                    PACKAGE.parent / candidate.replace(".", "/") / "__init__.py"
                ).exists():
                    found.add(candidate)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): sqlnet_imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_is_in_a_known_layer() -> None:
    unknown = sorted(m for m in graph() if layer(m) not in RANKS)
    assert not unknown, f"modules outside the layers {sorted(RANKS)}: {unknown}"


def test_no_module_imports_a_layer_above_it() -> None:
    upward = [
        f"{m} ({layer(m) or 'sqlnet'}) imports {i} ({layer(i) or 'sqlnet'})"
        for m, imports in graph().items()
        for i in imports
        if RANKS[layer(i)] > RANKS[layer(m)]
    ]
    assert not upward, "\n".join(upward)


def test_the_public_api_is_imported_only_by_the_cli_and_bench() -> None:
    # `import sqlnet` runs sqlnet/__init__.py, which imports ops: below the CLI only
    users = sorted(m for m, imports in graph().items() if "sqlnet" in imports and layer(m) not in ("cli", "bench"))
    assert not users, users


def test_nothing_imports_the_benchmark() -> None:
    users = sorted(m for m, imports in graph().items() if layer(m) != "bench" and any(layer(i) == "bench" for i in imports))
    assert not users, users


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), and self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in g.get(v, ()):
                found.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    # a package's __init__ importing its own submodules is not a cycle unless they import it back
    g = {m: {i for i in imports if i != m} for m, imports in graph().items()}
    assert not cycles(g), cycles(g)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: module_name(p))
def test_modules_are_small_or_say_why(path: Path) -> None:
    text = path.read_text()
    lines = text.count("\n")
    if lines > MAX_LINES:
        doc = ast.get_docstring(ast.parse(text)) or ""
        assert "Why this module is long:" in doc, (
            f"{module_name(path)} has {lines} lines (more than {MAX_LINES}): split it, or say at its top "
            f"'Why this module is long: ...'"
        )


def test_the_command_line_starts_without_the_database_machinery() -> None:
    """`sqlnet --help` loads click and rich, not SQLAlchemy, psycopg or the compiler: those load with the
    command that needs them (the public API imports its names when they are first used)."""
    import subprocess
    import sys

    probe = (
        "import sys; from click.testing import CliRunner; from sqlnet.cli import main; "
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0; "
        "print(sorted(m for m in ('sqlalchemy', 'psycopg', 'sqlnet.compile.statement', 'sqlnet.ops.common') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


HEAVY = ("sqlalchemy", "pandas", "sklearn", "numpy", "pyspark")


@pytest.mark.parametrize("command", [["--help"], ["runs"], ["train", "--epochs", "1", "--lr", "0.1"]], ids=" ".join)
def test_the_command_line_never_loads_the_python_integrations(command: list[str], post_db: str) -> None:
    """SQLAlchemy, pandas, scikit-learn (and NumPy, Spark) are for Python users: `sqlnet --help`, `sqlnet runs`
    and `sqlnet train` run without loading any of them."""
    import subprocess
    import sys

    args = command if command == ["--help"] else [*command, "--database-url", post_db]
    probe = (
        "import sys; from click.testing import CliRunner; from sqlnet.cli import main; "
        f"r = CliRunner().invoke(main, {args!r}); assert r.exit_code == 0, r.output; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
