"""The file layout is the dependency graph: every stage of dvc.yaml depends on exactly the code it
imports (its strategy's or source's module alone), both ways."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import importlib, sys
sys.argv = [sys.argv[1]]
sys.path.insert(0, "stages")
importlib.import_module(sys.argv[0])
for name in EXTRA:
    importlib.import_module(name)
root = __import__("pathlib").Path.cwd()
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None)
    path = path and __import__("pathlib").Path(path).resolve()
    if path and (path.is_relative_to(root / "src") or path.is_relative_to(root / "stages")):
        print(path.relative_to(root))
"""


def imported(script: str, extra: tuple[str, ...]) -> set[str]:
    """The repository's Python files that importing stages/<script>.py and the ``extra`` modules loads."""
    code = PROBE.replace("EXTRA", repr(list(extra)))
    out = subprocess.run([sys.executable, "-c", code, script], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def stages(root: Path = ROOT) -> dict[str, tuple[str, set[str]]]:
    """Every stage DVC resolves from ``root``'s dvc.yaml and params.yaml: (its script, its code deps with
    folders expanded to their .py files)."""
    from dvc.repo import Repo

    result = {}
    for stage in Repo(str(root)).index.stages:
        code = set()
        for dep in stage.deps:
            path = Path(dep.def_path)
            if path.parts[0] in ("src", "stages"):
                code |= {str(p.relative_to(ROOT)) for p in (ROOT / path).rglob("*.py")} if (ROOT / path).is_dir() else {str(path)}
        script = stage.cmd.split()[1]
        result[stage.name] = (Path(script).stem, code)
    return result


def extra_modules(name: str, params: dict) -> tuple[str, ...]:
    """What a stage imports at run time, as its params say: a learn stage its strategy's module, a prepare
    stage its source's, the summaries and figures every strategy's (for its colour)."""
    group, _, item = name.partition("@")
    if group in ("learn", "survey", "shift", "study", "single", "simulate"):
        strategy = next(s for s in params["options"] if f"-{s}-" in f"-{item}-")
        return (f"bal.strategies.{strategy}",)
    if group in ("prepare", "prepare_own"):
        return (f"bal.sources.{params['prepare' if group == 'prepare' else 'own'][item]['source']}",)
    if group == "suggest":
        return (f"bal.strategies.{params['suggest'][item]['strategy']}",)
    if group in ("figures", "study_summary"):
        return tuple(f"bal.strategies.{s}" for s in params["options"])
    return ()


def with_own_data(tmp_path) -> tuple[Path, dict]:
    """A copy of dvc.yaml with params.yaml plus own datasets of each file source, one of them in the
    simulate grid, and a suggest entry, so that every kind of stage resolves."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["own"] = {f"my_{source}": {"source": source, "path": f"data/sources/my_{source}"}
                     for source in ("image_folder", "npz", "csv")}
    params["suggest"] = {"my_csv": {"strategy": "epig"}}
    params["simulate"]["datasets"] = ["my_npz"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    no_scm = true\n")
    for name in ("src", "stages"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path, params


def test_every_stage_depends_on_exactly_the_code_it_imports(tmp_path):
    root, params = with_own_data(tmp_path)
    cache: dict = {}
    resolved = stages(root)
    assert {"learn@mnist-epig-0", "prepare@mnist", "prepare_own@my_npz", "simulate@my_npz-bald-0", "compare@my_npz",
            "suggest@my_csv", "aggregate", "figures"} <= set(resolved)
    for name, (script, deps) in resolved.items():
        key = (script, extra_modules(name, params))
        if key not in cache:
            cache[key] = imported(*key)
        assert deps == cache[key], f"{name}: imported but not a dep {sorted(cache[key] - deps)}, dep but not imported {sorted(deps - cache[key])}"


def test_a_change_to_one_strategy_or_source_reaches_only_its_stages(tmp_path):
    """Which stages a file puts out of date, read from the deps: epig.py only the *-epig-* runs (and the
    summaries that draw every strategy's colour); image_folder.py no stage of a built-in dataset."""
    resolved = stages(with_own_data(tmp_path)[0])
    reached = lambda path: {name for name, (_, deps) in resolved.items() if path in deps}  # noqa: E731
    epig = {name for name in resolved if "-epig-" in name}
    assert len(epig) == 23 and reached("src/bal/strategies/epig.py") == epig | {"figures", "study_summary", "suggest@my_csv"}
    bald = {name for name in resolved if "-bald-" in name}
    assert reached("src/bal/strategies/bald.py") == bald | {"figures", "study_summary"}
    assert reached("src/bal/sources/image_folder.py") == {"prepare_own@my_image_folder"}
    assert reached("src/bal/sources/torchvision.py") == {f"prepare@{d}" for d in
                                                         ("mnist", "repeated_mnist", "fashion_mnist", "mnist_unbalanced")}


WRAP = """
import atexit, runpy, sys
from pathlib import Path

root, out, script = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]


def dump():
    paths = {Path(m.__file__).resolve() for m in list(sys.modules.values()) if getattr(m, "__file__", None)}
    out.write_text("\\n".join(sorted(str(p.relative_to(root)) for p in paths
                                     if p.is_relative_to(root / "src") or p.is_relative_to(root / "stages"))))


atexit.register(dump)
sys.argv = sys.argv[3:]
sys.path.insert(0, str(Path(script).parent))
runpy.run_path(script, run_name="__main__")
"""


def test_what_a_stage_imports_while_it_runs_is_its_deps(tmp_path):
    """The static probe above cannot see imports made at run time (a strategy or source looked up by name):
    run tiny prepare, prepare_own, learn and suggest stages and record every module they had loaded at exit."""
    import numpy as np
    import pandas as pd

    (tmp_path / "repo").mkdir()
    resolved = stages(with_own_data(tmp_path / "repo")[0])
    work = tmp_path / "work"
    work.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    label = np.where(x[:, 0] > 0, "a", "b").astype(object)
    label[70:] = ""
    pd.DataFrame({"f": x[:, 0], "g": x[:, 1], "label": label}).to_csv(work / "t.csv", index=False)
    params["own"] = {"my_csv": {"source": "csv", "path": "t.csv", "n_validation": 5, "n_test": 10}}
    params["suggest"] = {"my_csv": {"strategy": "epig"}}
    params["learn"]["twomoons"].update(budget=6, train={"steps": 5})
    params["learn"]["my_csv"] = {"budget": 8, "acquisition_size": 2, "mc_samples": 4, "train": {"steps": 5}}
    params["options"]["epig"] = {"targets": 3}
    (work / "params.yaml").write_text(yaml.safe_dump(params))

    def run(stage: str, script: str, *args: str) -> None:
        out = work / f"{stage}.imports"
        subprocess.run([sys.executable, "-c", WRAP, str(ROOT), str(out), str(ROOT / "stages" / f"{script}.py"), *args],
                       cwd=work, check=True, capture_output=True)
        loaded = set(out.read_text().split())
        assert loaded == resolved[stage][1], f"{stage}: loaded, not a dep {sorted(loaded - resolved[stage][1])}; " \
                                             f"a dep, not loaded {sorted(resolved[stage][1] - loaded)}"

    run("prepare@twomoons", "prepare", "--dataset", "twomoons", "--out", "prepared/twomoons")
    run("prepare_own@my_csv", "prepare", "--dataset", "my_csv", "--out", "prepared/my_csv")
    for strategy in ("random", "epig", "badge"):
        run(f"learn@twomoons-{strategy}-0", "learn", "--dataset", "twomoons", "--strategy", strategy, "--seed", "0",
            "--prepared", "prepared/twomoons", "--out", f"runs/{strategy}", "--checkpoint", f"{strategy}.json")
    run("suggest@my_csv", "suggest", "--dataset", "my_csv", "--prepared", "prepared/my_csv", "--out", "s.csv",
        "--tasks", "t.json", "--interface", "i.xml", "--picture", "s.png", "--history", "h.csv")
