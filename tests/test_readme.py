"""The README's results are the metrics: each generated block is what tools/results_tables.py renders from
the committed metrics/*.json and params.yaml, and the results section states no number outside them."""

import re
from pathlib import Path

from bal.config import load_params
from test_tools import ROOT, results_tables

README = ROOT / "README.md"


def results_section(text: str) -> str:
    start = text.index("\n## Results\n")
    return text[start : text.index("\n## ", start + 1)]


def test_every_results_block_of_the_readme_is_what_the_metrics_say():
    found = results_tables.read_blocks(README.read_text())
    rendered = results_tables.readme_blocks(load_params(ROOT / "params.yaml"), *results_tables.metrics(ROOT))
    assert set(found) == set(rendered)
    for name, body in rendered.items():
        assert found[name] == body, f"the README's {name} block is not what the metrics say; rerun " \
                                    "python tools/results_tables.py --readme README.md"


def test_the_results_section_states_no_number_outside_the_generated_blocks():
    section = results_tables.BLOCK.sub("", results_section(README.read_text()))
    section = re.sub(r"\]\([^)]*\)", "]", section)  # link targets
    section = re.sub(r"\b(19|20)\d\d\b|Tables? \d( and \d)?|\bn − 1\b|95%|AVX512-BF16|bf16", "", section)  # years,
    # the papers' tables, the interval's name, the CPU's
    assert re.findall(r".{0,30}\d.{0,30}", section) == []


def test_rewriting_the_blocks_changes_only_the_blocks(tmp_path):
    text = "intro 1\n<!-- results: grids -->\nold\n<!-- /results -->\nend 2\n"
    assert results_tables.write_blocks(text, {"grids": "new\nlines"}) == \
        "intro 1\n<!-- results: grids -->\nnew\nlines\n<!-- /results -->\nend 2\n"
    try:
        results_tables.write_blocks(text.replace("grids", "grid"), {"grids": "x"})
    except ValueError as err:
        assert "the README has a block 'grid' that nothing renders" in str(err)
    else:
        raise AssertionError("an unknown block was accepted")
