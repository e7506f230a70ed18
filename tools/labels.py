"""Labels from Label Studio into your own data, for the suggest loop (README: your own data).

    python tools/labels.py push mine --url http://localhost:8080 --token TOKEN     # a project of the suggestions
    python tools/labels.py pull mine --url http://localhost:8080 --token TOKEN --project 1
    python tools/labels.py apply mine export.json                                  # a JSON export you saved

``push`` creates a Label Studio project with suggest's labelling interface (suggestions/<dataset>.xml)
and imports its tasks (suggestions/<dataset>.tasks.json); for an image folder it also lets the project
serve the images, which needs Label Studio started with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true
and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to this repository. ``pull`` takes the project's JSON
export and applies it as ``apply`` does: each label moves its image into the class folder, or fills
in its row's label cell. All or nothing: a label that is not a class, an item bal never suggested (not
in suggestions/<dataset>.history.csv, or changed since), or one labelled otherwise is refused in one
sentence and nothing changes; labels applied before are left as they are, so applying an export twice changes nothing.
Then ``dvc add data/sources/<dataset>`` and ``dvc repro suggest@<dataset>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import typer

from bal import label_studio
from bal.config import load_params
from bal.errors import ConfigError, DataError
from bal.sources import get

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages"))
from common import fails_cleanly  # noqa: E402  (the stages' one-sentence errors)

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])
URL = typer.Option("http://localhost:8080", help="the Label Studio server")
TOKEN = typer.Option(..., envvar="LABEL_STUDIO_API_KEY", help="your legacy API token (Account & Settings)")
PARAMS = typer.Option(Path("params.yaml"), "--params")
SUGGESTIONS = typer.Option(Path("suggestions"), help="the folder suggest writes to")


def own_dataset(dataset: str, params_path: Path):
    params = load_params(params_path)
    if dataset not in params.own:
        raise ConfigError(f"{dataset!r} is not one of your own datasets (own in {params_path}): "
                          f"{', '.join(params.own) or 'none'}.")
    return params


def apply_export(dataset: str, export: list, where: str, params_path: Path, suggestions: Path) -> None:
    entry = own_dataset(dataset, params_path).dataset(dataset)
    source = get(entry.source)
    if not hasattr(source, "apply_labels"):
        raise ConfigError(f"own.{dataset}: a {entry.source} dataset is labelled in your own code (move items from "
                          "x_unlabelled to x and y); image_folder and csv datasets take labels here.")
    labels = label_studio.labels_of(export, where)
    history = suggestions / f"{dataset}.history.csv"
    try:
        table = pd.read_csv(history, dtype=str, keep_default_na=False)
        suggested = table.groupby("item").content.agg(set).to_dict()
    except (OSError, ValueError, AttributeError, KeyError):
        raise DataError(f"{history} is missing or not suggest's (columns item and content); run dvc repro "
                        f"suggest@{dataset} first.") from None
    changed = source.apply_labels(entry.options, f"own.{dataset}", labels, suggested)
    typer.echo(f"{dataset}: {len(changed)} labels applied, {len(labels) - len(changed)} applied before; now "
               f"dvc add {entry.options.path} and dvc repro suggest@{dataset}")


@app.command()
@fails_cleanly
def apply(dataset: str, export: Path, params_path: Path = PARAMS, suggestions: Path = SUGGESTIONS) -> None:
    """Apply a Label Studio JSON export (Export > JSON) to dataset's files."""
    try:
        data = json.loads(export.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"{export} is not a readable JSON file ({err}).") from None
    apply_export(dataset, data, str(export), params_path, suggestions)


@app.command()
@fails_cleanly
def pull(dataset: str, project: int = typer.Option(...), url: str = URL, token: str = TOKEN,
         params_path: Path = PARAMS, suggestions: Path = SUGGESTIONS) -> None:
    """Apply the annotations of a Label Studio project to dataset's files."""
    apply_export(dataset, label_studio.Server(url, token).export(project), f"project {project} at {url}",
                 params_path, suggestions)


@app.command()
@fails_cleanly
def push(dataset: str, url: str = URL, token: str = TOKEN, title: str = typer.Option("", help="default: bal <dataset>"),
         params_path: Path = PARAMS, suggestions: Path = SUGGESTIONS) -> None:
    """Create a Label Studio project of dataset's suggestions; prints its id."""
    params = own_dataset(dataset, params_path)
    files = [suggestions / f"{dataset}{suffix}" for suffix in (".tasks.json", ".xml")]
    for file in files:
        if not file.is_file():
            raise DataError(f"{file} is missing; run dvc repro suggest@{dataset} first.")
    tasks, config = json.loads(files[0].read_text(encoding="utf-8")), files[1].read_text(encoding="utf-8")
    outside = [t["data"]["item"] for t in tasks if t["data"].get("image", "").startswith("/data/local-files/?d=..")]
    if outside:
        raise ConfigError(f"own.{dataset}.path is outside this repository, where Label Studio serves files from "
                          "(LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT); move it under data/sources.")
    server = label_studio.Server(url, token)
    project = server.create_project(title or f"bal {dataset}", config)
    folder = Path(params.own[dataset]["path"]).expanduser()
    if folder.is_dir():
        server.serve_folder(project, str(folder.resolve()))
    count = server.import_tasks(project, tasks)
    typer.echo(f"{dataset}: {count} tasks in project {project} at {url}; label them, then "
               f"python tools/labels.py pull {dataset} --project {project}")
    print(project)


if __name__ == "__main__":
    app()
