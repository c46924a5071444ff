"""The suite's own layout: no test module imports another; shared helpers live in factories.py,
support.py, browser_support.py or conftest.py."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_test_modules(path: Path) -> list[str]:
    """The test modules (`tests.test_*`, or relative `test_*`) that the file at `path` imports,
    anywhere in its code."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith("tests.")]
        elif isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").split(".")[0] == "tests"
        ):
            base = node.module or ""
            # `from tests import test_x` and `from . import test_x` name the module in the alias
            names = [base] + [f"{base}.{alias.name}".lstrip(".") for alias in node.names]
        else:
            continue
        found += [name for name in names if name.rsplit(".", 1)[-1].startswith("test_")]
    return found


def test_no_test_module_imports_another():
    visited = sorted(TESTS.glob("*.py"))
    imports = {path.name: imported_test_modules(path) for path in visited}
    assert {name: found for name, found in imports.items() if found} == {}
    # The scan read the whole suite (47 files when this test was written), this file included.
    assert len(visited) >= 45 and "test_suite_layout.py" in imports and "conftest.py" in imports


def test_the_scan_finds_every_form_of_import_of_a_test_module(tmp_path):
    module = tmp_path / "test_example.py"
    module.write_text(
        "import os\n"
        "from tests.factories import canteen\n"
        "from tests.test_billing import add_tariff\n"
        "import tests.test_documents\n"
        "from tests import test_planning\n"
        "def helper():\n"
        "    from .test_query_counts import queries_for\n",
        encoding="utf-8",
    )
    assert imported_test_modules(module) == [
        "tests.test_billing",
        "tests.test_documents",
        "tests.test_planning",
        "test_query_counts",
    ]
