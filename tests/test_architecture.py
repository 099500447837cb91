"""The layout keeps its promises (issue 9): no import circle between the project's modules, and
no arrow running back up between apps. Read from the source (top-level and function-level imports
alike), not from what happens to be loaded."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. An app may import itself and the apps before it, never one after it.
LAYERS = [
    "lib",  # framework-level helpers: egress, tasks, limits, tokens, log redaction
    "accounts",  # the user model and sign-in
    "orgs",  # organizations, memberships, invitations, the access layer
    "audit",  # who changed what: the append-only audit log
    "providers",  # the AI services, their catalogue and registry
    "credits",  # the credit pool, ledger, top-ups and usage
    "library",  # the brand library: uploaded product and reference images, their descriptions
    "generation",  # the generate page and the pipeline
    "gallery",  # finished images: gallery, image pages, favourites, collections, downloads
    "workspace",  # the organization's pages and its founding: brings the others together
    "nerstudio",  # configuration: settings, URLs, ASGI/WSGI, the Celery app
]


def project_modules() -> dict[str, set[str]]:
    """Module name -> the project modules it imports."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[0] not in LAYERS or "migrations" in parts:
            continue
        package = parts[:-1]  # what "." means in this file
        name = ".".join(package if parts[-1] == "__init__" else parts)
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
                module = ".".join(filter(None, [base, node.module or ""]))
                imported.add(module)
                imported |= {f"{module}.{alias.name}" for alias in node.names}
        graph[name] = {m for m in imported if m.split(".")[0] in LAYERS}
    modules = set(graph)
    # "from a import b" names a module when a.b is one; otherwise it imports from module a.
    return {
        name: {m if m in modules else m.rsplit(".", 1)[0] for m in imports} & modules - {name}
        for name, imports in graph.items()
    }


def test_no_app_imports_an_app_above_it():
    rank = {app: i for i, app in enumerate(LAYERS)}
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in project_modules().items()
        for target in targets
        if rank[target.split(".")[0]] > rank[module.split(".")[0]]
    )

    assert upward == []


def test_there_is_no_import_circle():
    graph = project_modules()
    circles, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])

    assert circles == []


def test_the_check_sees_real_imports():
    graph = project_modules()

    assert "generation.pipeline.submit" in graph
    assert "providers.fairshare" in graph["generation.pipeline.submit"]
