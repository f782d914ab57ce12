"""Imports flow one way: models <- stream <- training <- bench, the CLI package on top."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYERS = {"models": 0, "stream": 1, "training": 2, "bench": 3}


def upward_imports(package: str) -> list[str]:
    """Every absolute import in `package` of a higher layer or of the CLI package ``alertformer``."""
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "alertformer" or LAYERS.get(top, -1) > LAYERS[package]:
                    found.append(f"{path.relative_to(REPO)} imports {name}")
    return found


def test_no_package_imports_a_layer_above_it():
    assert [hit for package in LAYERS for hit in upward_imports(package)] == []
