"""The package keeps the shape its guide asks for: small modules and functions, thin entry
points, a one-line docstring on every public class and function, and its layers (config/ reads
no data, infer/ knows nothing of training, the model knows descriptors by its table alone)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "deepmd_tebd"
MAX_MODULE_LINES = 400
MAX_ENTRY_POINT_LINES = 60
MAX_FUNCTION_LINES = 60  # in train/ and model/
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


# what the config package must not import, even inside a function: it reads scripts, not data
CONFIG_MUST_NOT_IMPORT = ("deepmd_tebd.data", "deepmd_tebd.op", "tensorflow")
DYNAMIC_IMPORTS = {"import_module", "__import__"}


def imported_modules(tree, package: str) -> list[str]:
    """Every module `tree` imports anywhere (module level or in a function), relative imports
    resolved against `package`; `from M import n` counts as M and M.n, and a constant string
    passed to importlib.import_module or __import__ as that module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module
            if node.level:
                parts = package.split(".")
                base = parts[:len(parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            found += [module] + [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            arg = node.args[0]
            if name in DYNAMIC_IMPORTS and isinstance(arg, ast.Constant) \
                    and isinstance(arg.value, str):
                found.append(arg.value)
    return found


def forbidden_imports(tree, package: str, banned=CONFIG_MUST_NOT_IMPORT) -> list[str]:
    """The modules of `banned` (or below them) that `tree` imports."""
    return sorted({name for name in imported_modules(tree, package) for prefix in banned
                   if name == prefix or name.startswith(prefix + ".")})


def subpackage_imports(subpackage: str, banned) -> list[str]:
    """"module: name" for every module of `banned` that a module of deepmd_tebd/<subpackage>
    imports."""
    found = []
    for path in sorted((PACKAGE / subpackage).rglob("*.py")):
        package = ".".join(path.relative_to(PACKAGE.parent).parent.parts)
        found += [f"{path.relative_to(PACKAGE)}: {name}"
                  for name in forbidden_imports(ast.parse(path.read_text()), package, banned)]
    return found


def test_config_imports_neither_data_nor_the_op_library_nor_tensorflow():
    assert subpackage_imports("config", CONFIG_MUST_NOT_IMPORT) == []


def test_infer_imports_nothing_of_train():
    assert subpackage_imports("infer", ("deepmd_tebd.train",)) == []


def test_the_import_check_finds_every_kind_of_import():
    source = ("import json\nfrom . import schema\nfrom .errors import Problem\n"
              "from ..data.system import System\n"
              "def f():\n    import tensorflow as tf\n    from .. import op\n"
              "    from deepmd_tebd.data import neighbor_stat\n"
              "class A:\n    def g(self):\n        import tensorflow.python.ops\n"
              "        import importlib\n        importlib.import_module('deepmd_tebd.op')\n"
              "        from ..datasets import x\n")
    tree = ast.parse(source)
    assert forbidden_imports(tree, "deepmd_tebd.config") == [
        "deepmd_tebd.data", "deepmd_tebd.data.neighbor_stat", "deepmd_tebd.data.system",
        "deepmd_tebd.data.system.System", "deepmd_tebd.op", "tensorflow",
        "tensorflow.python.ops"]
    assert "deepmd_tebd.config.errors" in imported_modules(tree, "deepmd_tebd.config")


def test_the_model_names_descriptor_classes_only_in_its_table():
    tree = ast.parse((PACKAGE / "model/energy_model.py").read_text())
    classes = {node.name for path in (PACKAGE / "model").glob("*.py")
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ClassDef) and node.name.startswith("Descriptor")}
    table = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and [getattr(t, "id", None) for t in node.targets] == ["DESCRIPTORS"])
    in_table = {n.id for n in ast.walk(table) if isinstance(n, ast.Name)}
    table_nodes = {id(n) for n in ast.walk(table)}
    elsewhere = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in classes
                 and id(n) not in table_nodes]
    assert in_table == classes - {"Descriptor"}  # every descriptor layer; not the protocol
    assert elsewhere == []  # and named nowhere else (imports aside)


def long_functions(tree, limit: int) -> list[str]:
    """The functions and methods of `tree` longer than `limit` lines."""
    return [node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > limit]


def test_no_function_in_train_and_model_is_over_60_lines():
    long = [f"{p.relative_to(PACKAGE)}: {name}" for sub in ("train", "model")
            for p in sorted((PACKAGE / sub).rglob("*.py"))
            for name in long_functions(ast.parse(p.read_text()), MAX_FUNCTION_LINES)]
    assert long == []


def test_the_length_check_finds_a_long_function():
    body = "\n".join(f"    x{k} = {k}" for k in range(60))
    source = f"def f():\n{body}\n\nclass A:\n    def g(self):\n        return 1\n"
    assert long_functions(ast.parse(source), 60) == ["f"]
