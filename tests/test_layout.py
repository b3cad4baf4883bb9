"""The package keeps the shape its guide asks for: small modules, thin entry points, and a
one-line docstring on every public class and function."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "deepmd_tebd"
MAX_MODULE_LINES = 400
MAX_ENTRY_POINT_LINES = 60
# Keras' layer lifecycle methods, documented once by keras.layers.Layer
LIFECYCLE = {"build", "call", "get_config"}


def modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in modules()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_entry_points_only_wire():
    long = {p.name: n for p in (PACKAGE / "entrypoints").glob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_ENTRY_POINT_LINES}
    assert long == {}


def undocumented(tree, prefix=""):
    """Public classes, functions and methods of `tree` without a docstring."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            public = not node.name.startswith("_")
            if public and node.name not in LIFECYCLE and ast.get_docstring(node) is None:
                found.append(prefix + node.name)
            if isinstance(node, ast.ClassDef) and public:
                found += undocumented(node, prefix + node.name + ".")
    return found


def test_public_classes_and_functions_have_docstrings():
    missing = [f"{p.relative_to(PACKAGE)}: {name}" for p in modules()
               for name in undocumented(ast.parse(p.read_text()))]
    assert missing == []


def test_the_docstring_check_finds_a_missing_docstring():
    tree = ast.parse("def f():\n    pass\n\nclass A:\n    '''A.'''\n    def g(self):\n"
                     "        return 1\n    def _h(self):\n        pass\n")
    assert undocumented(tree) == ["f", "A.g"]
