"""The layout's promises: one package per stage with no import cycle, a config that reads
without torch, and stored answers that follow the parser of the day (docs/design.md)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
PKG = LIB / "ambiemo"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the ambiemo modules it imports (anywhere in the file, lazily too: a cycle
    hidden inside a function is still a cycle). `from pkg import name` counts as importing
    `pkg.name` when that is a module, else `pkg`."""
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:   # relative: resolve against this module's package
                    base = mod.split(".")[: len(mod.split(".")) - node.level + is_pkg]
                    parent = ".".join(base + ([node.module] if node.module else []))
                else:
                    parent = node.module or ""
                targets = [f"{parent}.{a.name}" if f"{parent}.{a.name}" in modules else parent
                           for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t.startswith("ambiemo") and t != mod:
                    graph[mod].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle_in_the_library():
    graph = import_graph()
    assert len(graph) > 50, "the walk found too few modules to mean anything"
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_a_cycle_through_a_facade():
    # A module importing its own package's facade while the facade imports it back is the
    # cycle the layout forbids; the finder must see it.
    graph = {"ambiemo.tts": {"ambiemo.tts.predictions"},
             "ambiemo.tts.predictions": {"ambiemo.tts"}, "ambiemo.labels": set()}
    assert find_cycle(graph) == ["ambiemo.tts", "ambiemo.tts.predictions", "ambiemo.tts"]


def test_no_module_reads_its_own_package_facade():
    graph = import_graph()
    bad = [(m, t) for m, targets in graph.items() for t in targets
           if not (PKG / Path(*m.split(".")[1:]) / "__init__.py").exists()  # m is no package
           and m.rpartition(".")[0] == t and t != "ambiemo"]
    assert not bad, f"modules importing their own package's facade: {bad}"


def test_every_stage_package_has_a_docstring():
    for init in PKG.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), f"{init.relative_to(LIB)} says nothing of what it is for"



def test_config_reads_without_torch():
    # The pipeline driver only runs papermill; reading YAML must not need torch.
    code = "import ambiemo.config, ambiemo.layout, sys; assert 'torch' not in sys.modules"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_stored_answers_follow_the_parser(tmp_path, monkeypatch):
    """A synonym added to the label vocabulary reaches answers already in the store: the
    predictions change without generating again (answers are parsed when read)."""
    from ambiemo import labels, tts
    from ambiemo.sampling.store import SampleStore

    classes = ["neutral", "sad"]
    with SampleStore(tmp_path / "samples.sqlite") as store:
        store.register_run("k", "m", {"answers": {"greedy": "label", "sample": "label"}}, classes)
        store.write("k", [
            {"utt_id": "u1", "kind": "greedy", "idx": 0, "text": "Melancholic.", "parse_ok": False,
             "parse_error": "no emotion label found"},
            {"utt_id": "u2", "kind": "greedy", "idx": 0, "text": "neutral", "parse_ok": True},
            {"utt_id": "u1", "kind": "sample", "idx": 0, "text": "melancholic", "parse_ok": False},
            {"utt_id": "u1", "kind": "sample", "idx": 1, "text": "sad", "parse_ok": True},
            {"utt_id": "u2", "kind": "sample", "idx": 0, "text": "neutral", "parse_ok": True},
            {"utt_id": "u2", "kind": "sample", "idx": 1, "text": "neutral", "parse_ok": True},
        ])
        before = store.read("k")
        assert before.loc[before["text"] == "Melancholic.", "failure"].item() == "unparsed"
        pred_before = tts.predict(before, classes, ["greedy", "majority"], model="m")

        monkeypatch.setitem(labels.SYNONYMS, "melancholic", "sad")
        after = store.read("k")
    assert after.loc[after["text"] == "Melancholic.", "p_sad"].item() == 1.0
    assert (after["failure"] == "").all()
    pred_after = tts.predict(after, classes, ["greedy", "majority"], model="m")

    def row(pred, strategy):
        r = pred[(pred["utt_id"] == "u1") & (pred["strategy"] == strategy)]
        return r[["p_neutral", "p_sad"]].to_numpy(dtype=float)[0]

    assert np.isnan(row(pred_before, "greedy")).all()           # missing before the fix
    np.testing.assert_array_equal(row(pred_after, "greedy"), [0.0, 1.0])
    np.testing.assert_array_equal(row(pred_before, "majority"), [0.0, 1.0])  # 1 usable of 2
    assert pred_before.loc[(pred_before["utt_id"] == "u1")
                           & (pred_before["strategy"] == "majority"), "n_usable"].item() == 1
    assert pred_after.loc[(pred_after["utt_id"] == "u1")
                          & (pred_after["strategy"] == "majority"), "n_usable"].item() == 2


def test_generation_failures_are_not_parsed(tmp_path):
    """A row that never produced an answer keeps its failure kind; text cannot revive it."""
    from ambiemo.sampling.store import SampleStore

    with SampleStore(tmp_path / "s.sqlite") as store:
        store.register_run("k", "m", {"answers": {"greedy": "label"}}, ["neutral", "sad"])
        store.write("k", [{"utt_id": "u", "kind": "greedy", "idx": 0, "text": "", "parse_ok": False,
                           "parse_error": "audio: empty file", "failure": "audio_error"}])
        with pytest.raises(ValueError, match="unknown failure kind"):
            store.write("k", [{"utt_id": "v", "kind": "greedy", "idx": 0, "text": "",
                               "parse_ok": False, "failure": "bad"}])
        got = store.read("k")
    assert got["failure"].tolist() == ["audio_error"]
    assert got["parse_error"].tolist() == ["audio: empty file"]
    assert np.isnan(got[["p_neutral", "p_sad"]].to_numpy(dtype=float)).all()
