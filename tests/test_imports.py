"""Static checks of the tree. The import graph: no circles (also through imports inside functions),
envs/ independent of vip_rl, every module importable first, alone, in a fresh interpreter. The tests:
every ``pytest.raises`` names its message."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"vip_rl": ROOT / "vip_rl", "vip_envs": ROOT / "envs"}


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for file in sorted(folder.rglob("*.py")):
            parts = [package, *file.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = file
    return modules


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, file: Path) -> set[str]:
    """The toolkit modules ``name`` imports anywhere (top level or inside functions), except under TYPE_CHECKING.

    ``from package import submodule`` counts as importing the submodule; ``from package import name`` as
    importing the package's ``__init__``.
    """
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit_node(other)
                continue
            visit_node(child)

    def visit_node(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                while parts and ".".join(parts) not in MODULES:
                    parts.pop()
                if parts:
                    found.add(".".join(parts))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    found.add(f"{target}.{alias.name}")
                elif target in MODULES:
                    found.add(target)
        visit(node)

    visit(ast.parse(file.read_text(), filename=str(file)))
    found.discard(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


GRAPH = {name: _imports(name, file) for name, file in MODULES.items()}


def test_cycle_finder_finds_a_lazy_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles() -> None:
    circles = [{m: sorted(GRAPH[m] & set(c)) for m in c} for c in _cycles(GRAPH)]
    assert not circles, f"import circles (module: the circle members it imports): {circles}"


def test_envs_do_not_import_vip_rl() -> None:
    offenders = {m: sorted(i for i in GRAPH[m] if i.split(".")[0] == "vip_rl")
                 for m in GRAPH if m.split(".")[0] == "vip_envs"}
    assert not {m: i for m, i in offenders.items() if i}, offenders


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=300)


def test_gl_and_io_helpers_import_nothing_heavy() -> None:
    result = _run("""
        import sys
        import vip_rl._gl, vip_rl._io
        print(sorted(m for m in ("mujoco", "torch", "numpy", "vip_envs") if m in sys.modules))
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks one child per module")
def test_every_module_imports_first_and_alone() -> None:
    """Each module is imported first, in a fresh process: no import-order dependence, no circle at import."""
    # Third-party libraries are loaded once, then each module is imported by a forked child, so a
    # module finds none of the toolkit already imported (about 10x cheaper than a new interpreter each).
    result = _run("""
        import importlib, os, sys, traceback
        for name in ("numpy", "torch", "h5py", "gymnasium", "mujoco", "scipy", "PIL", "matplotlib",
                     "stable_baselines3", "safetensors", "tqdm", "imageio"):
            try:
                importlib.import_module(name)
            except ImportError:
                pass
        assert not [m for m in sys.modules if m.split(".")[0] in ("vip_rl", "vip_envs")]
        failures = []
        for name in sys.argv[1:]:
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read)
                try:
                    importlib.import_module(name)
                    code = 0
                except BaseException:
                    os.write(write, traceback.format_exc()[-3000:].encode())
                    code = 1
                os._exit(code)
            os.close(write)
            message = b""
            while chunk := os.read(read, 1 << 16):
                message += chunk
            os.close(read)
            if os.waitpid(pid, 0)[1]:
                failures.append(f"{name}:\\n{message.decode()}")
        print("\\n".join(failures))
        sys.exit(1 if failures else 0)
    """.replace('sys.argv[1:]', repr(sorted(MODULES))), MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_every_pytest_raises_names_its_message() -> None:
    """STYLE.md: each check is ``pytest.raises(..., match=...)``, so a test cannot pass on the wrong error."""
    unnamed = []
    for file in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "raises"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "pytest"
                    and not any(keyword.arg == "match" for keyword in node.keywords)):
                unnamed.append(f"{file.name}:{node.lineno}")
    assert not unnamed, f"pytest.raises without match=: {unnamed}"
