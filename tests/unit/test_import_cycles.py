"""No import cycle between tollway's modules, lazy imports inside functions and imports under TYPE_CHECKING
included. The acyclic_siblings contract in .importlinter (run by `make lint`) compares the packages of each
package; this compares modules, a package's own __init__ included, which that contract does not look at."""

from __future__ import annotations

import grimp


def cycles(graph: grimp.ImportGraph) -> list[str]:
    """Each direct import that the imported module's own imports lead back from, as the whole circle."""
    found: list[str] = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                found.append(" -> ".join((module, *back)))
    return found


def test_a_cycle_is_found() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=importer, imported=imported)
    assert cycles(graph) == ["p.a -> p.b -> p.c -> p.a", "p.b -> p.c -> p.a -> p.b", "p.c -> p.a -> p.b -> p.c"]


def test_no_module_of_tollway_imports_itself_back() -> None:
    graph = grimp.build_graph("tollway", cache_dir=None)
    assert len(graph.modules) > 300  # the package was found and read
    assert cycles(graph) == []
