"""The code's shape: one module writes a booking's state, portail/ imports no module in a cycle, and no service types a page's path."""

import ast
from pathlib import Path

import pytest

PORTAIL = Path(__file__).resolve().parent.parent / "portail"
TRANSITIONS = "portail.bookings.transitions"


def modules(root: Path) -> dict[str, Path]:
    """Every module under `root` by dotted name (a package by its own name), migrations aside."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _module_level(body: list[ast.stmt]):
    """The imports run when the module is imported (not those under `if TYPE_CHECKING:` or in functions)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            yield from _module_level(node.body + node.orelse + node.finalbody)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each module's module-level imports of other modules under `root`.

    `from a import b` is an edge to the module a.b when there is one, else to a. A package's
    `__init__` counts as any module: a submodule that imports from its package while the package
    imports it is a cycle (a blueprint's `bp` is defined in its `routes`, which the package imports).
    """
    found = modules(root)
    graph = {}
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in _module_level(ast.parse(path.read_text(encoding="utf-8")).body):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if alias.name in found}
                continue
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in found:
                    edges.add(target)
                elif base in found:
                    edges.add(base)
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
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
                    found.append(sorted(component))
    return found


def test_portail_imports_no_module_in_a_cycle():
    graph = import_graph(PORTAIL)
    assert len(graph) > 80, "the scan found too few modules to mean anything"
    assert sum(len(edges) for edges in graph.values()) > 200
    assert "portail.bookings.rules" in graph["portail.bookings.transitions"]
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("import pkg.c\n")
    (package / "c.py").write_text("from pkg import a\n\n\ndef late():\n    from pkg import b\n")
    assert cycles(import_graph(package)) == [["pkg.a", "pkg.b", "pkg.c"]]
    (package / "c.py").write_text("def late():\n    from pkg import a\n")
    assert cycles(import_graph(package)) == []


def test_the_cycle_check_counts_a_package_that_imports_its_submodule_back(tmp_path):
    """The blueprint idiom this project left: `bp` in `__init__`, which imports the routes that import `bp`."""
    package = tmp_path / "blue"
    package.mkdir()
    (package / "__init__.py").write_text("bp = object()\nfrom blue import routes\n")
    (package / "routes.py").write_text("from blue import bp\n")
    assert cycles(import_graph(package)) == [["blue", "blue.routes"]]
    (package / "__init__.py").write_text("from blue.routes import bp\n")
    (package / "routes.py").write_text("bp = object()\n")
    assert cycles(import_graph(package)) == []


def _source(node: ast.AST) -> str:
    return ast.unparse(node)


def booking_state_writes(source: str) -> list[str]:
    """The statements of a module's source that change a booking: its state set (on an object named
    like a booking, or to a BookingState or previous state), a Booking built with a state, a Core
    insert, update or delete of the booking table, a booking deleted from the session, raw SQL."""
    writes = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                elements = target.elts if isinstance(target, ast.Tuple) else [target]
                values = (
                    node.value.elts
                    if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                    else [node.value] * len(elements)
                )
                for element, value in zip(elements, values, strict=False):
                    if not (
                        isinstance(element, ast.Attribute) and element.attr in ("state", "previous_state")
                    ):
                        continue
                    said = _source(value) if value is not None else ""
                    if (
                        "booking" in _source(element.value).lower()
                        or "BookingState" in said
                        or "previous_state" in said
                    ):
                        writes.append(_source(node))
        elif isinstance(node, ast.Call):
            function = _source(node.func)
            arguments = " ".join(_source(argument) for argument in node.args)
            if function.split(".")[-1] == "Booking" and any(k.arg == "state" for k in node.keywords):
                writes.append(_source(node))
            elif function.split(".")[-1] in ("update", "insert", "delete") and (
                "booking" in function.lower()
                or (node.args and _source(node.args[0]).split(".")[0] == "Booking")
            ):
                writes.append(_source(node))
            elif function.endswith("session.delete") and "booking" in arguments.lower():
                writes.append(_source(node))
            elif function == "setattr" and "booking" in arguments.lower():
                writes.append(_source(node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            words = " ".join(node.value.lower().split())
            if any(f"{verb} booking " in f"{words} " for verb in ("update", "insert into", "delete from")):
                writes.append(node.value)
    return writes


@pytest.mark.parametrize(
    "source",
    [
        "booking.state = BookingState.RESERVED",
        "row.state, row.reason = BookingState.ABSENT, None",
        "found.state = found.previous_state",
        "db.session.add(Booking(child_id=1, activity_id=2, day=d, state=s))",
        "db.session.execute(sa.update(Booking).values(state=s))",
        "statement = Booking.__table__.update()",
        "db.session.delete(booking)",
        "db.session.execute(sa.text('UPDATE booking SET state = :s'))",
    ],
)
def test_the_scan_sees_a_write_of_a_booking_state(source):
    assert booking_state_writes(source)


@pytest.mark.parametrize(
    "source",
    [
        "line.state = LineState.ACCEPTED",
        "document.state = DocumentState.REPLACED",
        "rows = sa.select(Booking.state).where(Booking.day == day)",
        "db.session.execute(sa.update(ActivityDay).values(booked=1))",
    ],
)
def test_the_scan_leaves_other_states_and_reads_alone(source):
    assert booking_state_writes(source) == []


def test_only_the_bookings_transitions_write_a_booking_state():
    found = modules(PORTAIL)
    writers = {
        name: writes
        for name, path in found.items()
        if (writes := booking_state_writes(path.read_text(encoding="utf-8")))
    }
    assert len(found) > 80
    assert len(writers.get(TRANSITIONS, [])) == 4  # insert, a request's update, a decision's, a removal
    assert {name: writes for name, writes in writers.items() if name != TRANSITIONS} == {}


def test_the_transitions_write_a_booking_state_in_one_function():
    """The four statements that change a booking are built once and run only by `write_days` (which
    changes a day only from the state read); no other function writes a booking itself."""
    tree = ast.parse(modules(PORTAIL)[TRANSITIONS].read_text(encoding="utf-8"))
    statements = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign) and booking_state_writes(_source(node))
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert statements == {"INSERT_BOOKINGS", "ASK_BOOKINGS", "SET_BOOKINGS", "REMOVE_BOOKINGS"}
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert len(functions) > 8
    running = {
        function.name
        for function in functions
        if any(isinstance(node, ast.Name) and node.id in statements for node in ast.walk(function))
    }
    assert running == {"write_days"}
    assert [function.name for function in functions if booking_state_writes(_source(function))] == []


# The blueprints' URL prefixes: a mail's or a job's link is built from the URL map (urls.public_url), not typed.
URL_PREFIXES = ("/famille", "/mon-espace", "/gestion", "/facturation")


def typed_paths(source: str) -> list[str]:
    """The string literals (f-strings' parts too) that start with a blueprint's URL prefix."""
    return [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith(URL_PREFIXES)
    ]


def test_the_path_scan_sees_a_typed_link():
    source = "link = f\"{current_app.config['PUBLIC_URL']}/mon-espace/demandes/{request_id}\""
    assert typed_paths(source) == ["/mon-espace/demandes/"]
    assert typed_paths('link = public_url("account.request_history", request_id=1)') == []


def test_no_service_or_job_types_a_page_path():
    """Views and blueprints name their own routes; services, jobs and the bookings package build links
    from endpoints."""
    scanned = {
        name: path.read_text(encoding="utf-8")
        for name, path in modules(PORTAIL).items()
        if not name.endswith("routes") and not path.read_text(encoding="utf-8").count("Blueprint(")
    }
    assert len(scanned) > 50
    assert {name: paths for name, source in scanned.items() if (paths := typed_paths(source))} == {}
