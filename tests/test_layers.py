"""The layers point one way (docs/design.md, "Layers"): core <- training <- deploy.export / deploy.sim <- pipeline,
deploy.robot on core alone, rclpy only under ros_ws. Read from the source with `ast`, so a new import that
breaks the layering fails here. `python tests/test_layers.py` prints the graph."""

from __future__ import annotations

import ast
import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "training", "deploy", "calibration", "pipeline")


def unit(module: str) -> str:
    """The layer a module belongs to: `deploy.robot`, `training.ppo`, `core`, ..."""
    parts = module.split(".")
    if parts[0] in ("deploy", "training") and len(parts) > 1:
        return f"{parts[0]}.{parts[1]}"
    return parts[0]


def import_graph() -> dict[str, set[str]]:
    """unit -> the units it imports (absolute imports of our packages; tests excluded)."""
    edges: dict[str, set[str]] = collections.defaultdict(set)
    for root in [*(ROOT / p for p in PACKAGES), ROOT / "ros_ws" / "src"]:
        for path in root.rglob("*.py"):
            if "test" in path.relative_to(ROOT).parts:
                continue
            rel = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
            src = "ros_ws" if rel.startswith("ros_ws") else unit(rel)
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in PACKAGES or top in ("rclpy", "torch"):
                        dst = unit(name) if top in PACKAGES else top
                        if dst != src:
                            edges[src].add(dst)
    return edges


def _reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo += edges.get(node, ())
    return False


def test_no_cycle_between_layers():
    edges = import_graph()
    cycles = [(a, b) for a in edges for b in edges[a] if b in PACKAGES or "." in b
              if _reaches(edges, b, a)]
    assert not cycles, f"import cycles between layers: {cycles}"


def test_arrows_point_one_way():
    edges = import_graph()
    ours = lambda u: u.split(".")[0] in PACKAGES  # noqa: E731
    for src, dsts in edges.items():
        deps = {d for d in dsts if ours(d)}
        if src == "core":
            assert not deps, f"core must import none of our packages, imports {deps}"
        if src.startswith("training"):
            assert all(d == "core" or d.startswith("training") for d in deps), f"{src} imports {deps}"
        if src == "deploy.robot":
            assert deps <= {"core"} and "torch" not in dsts, f"the robot runtime imports {dsts}"
        if src == "calibration":
            assert all(d in ("core", "deploy.robot", "training.envs") for d in deps), f"calibration imports {deps}"
        if src != "pipeline":
            assert "pipeline" not in deps, f"{src} imports the pipeline, which sits above everything"
        if src != "ros_ws":
            assert "rclpy" not in dsts, f"{src} imports rclpy: ROS code lives under ros_ws"
    assert edges["ros_ws"] & {"rclpy"} and all(d in ("core", "rclpy", "calibration") or d.startswith("deploy.")
                                               for d in edges["ros_ws"])


if __name__ == "__main__":
    for src, dsts in sorted(import_graph().items()):
        print(f"{src:18s} -> {', '.join(sorted(dsts))}")
