"""Label Studio, the annotation tool labelling teams run: the tasks of a suggestion, its labelling
interface, the labels of a project's JSON export, and the few calls of its HTTP API that bal makes.

A task's ``data`` holds the item as bal names it (``item``), what the labeller sees (``image``: the
image as Label Studio's local-files URL; or ``features``: a table row), the acquisition ``score`` and
``rank``; its ``predictions`` hold the model's predicted class as a pre-annotation, scored by its
probability. Label Studio returns the ``data`` keys unchanged in its export, where a label sits at
``annotations[].result[].value.choices[0]``. Plain HTTP and JSON: the SDK (label-studio-sdk 2.1.2)
would pin numpy 2.2 and pull OpenCV into an environment whose numpy decides our results' rounding.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.parse
import urllib.request
from xml.sax.saxutils import quoteattr

from bal.errors import DataError

CHOICES = "label"  # the Choices tag's name, in the interface and in each pre-annotation


def label_config(class_names: list[str], kind: str) -> str:
    """The labelling interface: the image (or the row's features) and one choice per class."""
    shown, tag = ("image", '<Image name="image" value="$image" zoom="true"/>') if kind == "image" else \
        ("features", '<Table name="features" value="$features"/>')
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in class_names)
    return (f"<View>\n  {tag}\n  <Choices name=\"{CHOICES}\" toName=\"{shown}\" choice=\"single\" showInline=\"true\" "
            f"required=\"true\">\n{choices}\n  </Choices>\n</View>\n")


def local_file_url(path: str) -> str:
    """Label Studio's URL of a file under its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, ``path`` relative to it."""
    return "/data/local-files/?d=" + urllib.parse.quote(path)


def png_data_url(image_C_H_W) -> str:
    """An image array (uint8, or any numbers, stretched to 0..255) as a PNG ``data:`` URL, for a task to hold."""
    import numpy as np
    from PIL import Image

    image = np.asarray(image_C_H_W)
    if image.dtype != np.uint8:
        image = np.round(255 * (image - image.min()) / max(float(np.ptp(image)), 1e-12)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image[0] if len(image) == 1 else image.transpose(1, 2, 0)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def tasks(rows: list[dict], kind: str, strategy: str) -> list[dict]:
    """One task per suggested item. ``rows``: ``item``, ``rank``, ``score``, ``predicted_class``,
    ``probability``, and ``image`` (a URL) or ``features`` (a mapping of column to value)."""
    shown = "image" if kind == "image" else "features"
    return [{
        "data": {"item": row["item"], shown: row[shown], "rank": row["rank"], "score": row["score"], "strategy": strategy},
        "predictions": [{
            "model_version": f"bal {strategy}",
            "score": row["probability"],
            "result": [{"from_name": CHOICES, "to_name": shown, "type": "choices",
                        "value": {"choices": [row["predicted_class"]]}}],
        }],
    } for row in rows]


def labels_of(export: list, where: str) -> dict[str, str]:
    """``{item: label}`` of a project's JSON export: each item's label from its annotations that were not
    cancelled, in every task that holds it (tasks nobody labelled yet are left out). Refused in one
    sentence: what is not an export, a task without bal's ``item``, or annotators who disagree."""
    if not isinstance(export, list):
        raise DataError(f"{where} is not a Label Studio JSON export (a list of tasks).")
    given: dict[str, set[str]] = {}
    for task in export:
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("item"), str):
            raise DataError(f"{where}: task {task.get('id') if isinstance(task, dict) else task!r} has no data.item, "
                            "so bal never suggested it (import the tasks file that suggest writes).")
        try:
            choices = {result["value"]["choices"][0].strip() for annotation in task.get("annotations", [])
                       if not annotation.get("was_cancelled") for result in annotation.get("result", [])
                       if result.get("type") == "choices"}
        except (AttributeError, KeyError, IndexError, TypeError):
            raise DataError(f"{where}: an annotation of {data['item']} is not a Label Studio choice.") from None
        given.setdefault(data["item"], set()).update(choices)
    for item, choices in given.items():
        if len(choices) > 1:
            raise DataError(f"{where}: the annotators of {item} disagree ({', '.join(sorted(choices))}); settle it in "
                            "Label Studio first.")
    return {item: choices.pop() for item, choices in given.items() if choices}


class Server:
    """A Label Studio server at ``url``, reached with a user's legacy API token (Account & Settings)."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url.rstrip("/"), token

    def call(self, method: str, path: str, body=None):
        request = urllib.request.Request(
            self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                text = response.read()
        except urllib.error.HTTPError as err:
            raise DataError(f"Label Studio at {self.url} refused {method} {path}: HTTP {err.code} "
                            f"{err.read().decode(errors='replace')[:300]}") from None
        except (urllib.error.URLError, OSError) as err:
            raise DataError(f"Label Studio at {self.url} cannot be reached ({err}); is it running?") from None
        return json.loads(text) if text else None

    def create_project(self, title: str, config: str) -> int:
        return self.call("POST", "/api/projects", {"title": title, "label_config": config})["id"]

    def serve_folder(self, project: int, folder: str) -> None:
        """Let the project show the images under ``folder`` (absolute, under the server's document root)."""
        self.call("POST", "/api/storages/localfiles", {"project": project, "path": folder, "title": "bal",
                                                       "use_blob_urls": True})

    def import_tasks(self, project: int, new: list[dict]) -> int:
        return self.call("POST", f"/api/projects/{project}/import", new)["task_count"]

    def export(self, project: int) -> list:
        return self.call("GET", f"/api/projects/{project}/export?exportType=JSON")
