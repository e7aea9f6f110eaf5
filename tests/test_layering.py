"""The package's layering rules, read from the source: `core/` imports no idea, and no idea imports the launch script
(it loads trainers by name through `trainers.py`, so an idea importing it would be a hidden loop)."""

import ast
from pathlib import Path

import pytest


SRC = Path(__file__).resolve().parents[1] / "src" / "open_r1_ext"
IDEAS = sorted(p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists() and p.name != "core")


def imported_modules(path: Path) -> set[str]:
    """Absolute module names imported by `path` (relative imports resolved against its package)."""
    package = ["open_r1_ext", *path.relative_to(SRC).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
    return names


def test_the_tree_has_ideas():
    assert {"token_adaptive", "token_scavenger", "deepmime", "rlaif", "compression", "char_rl"} <= set(IDEAS)


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_layering(path):
    mods = imported_modules(path)
    if path.name != "grpo.py" or path.parent != SRC:
        assert "open_r1_ext.grpo" not in mods, f"{path} imports the launch script"
    if "core" in path.relative_to(SRC).parts:
        bad = sorted(
            m for m in mods for idea in IDEAS if m == f"open_r1_ext.{idea}" or m.startswith(f"open_r1_ext.{idea}.")
        )
        assert not bad, f"{path} (core) imports ideas: {bad}"


def test_the_check_sees_an_import(tmp_path, monkeypatch):
    """The reader resolves a relative import of the launch script, so the rule above can fail."""
    fake = SRC / "compression" / "_layering_probe.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "from .. import grpo\nfrom ..grpo import main\n")
    assert "open_r1_ext.grpo" in imported_modules(fake)
