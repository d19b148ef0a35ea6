"""The figures in the docs are the code's: scripts/docs_figures.py writes them, and this
test fails when a committed figure differs from what the current code gives.

Only the cheap part runs here (no concept extraction): the ROUGE rows of the MTS-Dialog
tables, the Shrout & Fleiss ICCs, and the coverage evaluator's version the concept figures
were measured with; a change of lexicon, assertion rules or coverage logic changes that
version, so this test then asks for `scripts/docs_figures.py` to be run again.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MTS_FIXTURE = ROOT / "fixtures" / "mts_dialog_ratings.jsonl"


@pytest.fixture(scope="module")
def figures():
    spec = importlib.util.spec_from_file_location("docs_figures", ROOT / "scripts" / "docs_figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not MTS_FIXTURE.exists(), reason="fixtures/mts_dialog_ratings.jsonl not present")
def test_committed_figures_are_what_the_code_gives(figures) -> None:
    problems = figures.cheap_problems(figures.documents())
    assert problems == [], "stale figures: run `.venv/bin/python scripts/docs_figures.py` and commit\n" \
        + "\n".join(problems)


@pytest.mark.skipif(not MTS_FIXTURE.exists(), reason="fixtures/mts_dialog_ratings.jsonl not present")
def test_a_stale_figure_is_found(figures) -> None:
    texts = figures.documents()
    agreement = texts["docs/agreement.md"]
    rouge_row = next(line for line in agreement.splitlines() if line.startswith("| FactualRecall | rouge1 |"))
    stale = {
        "docs/agreement.md": agreement.replace(rouge_row, rouge_row.replace("0.42", "0.41", 1))
                                      .replace("ICC(3,1) = 0.71", "ICC(3,1) = 0.70")
                                      .replace("<!-- figures:coverage-version -->`",
                                               "<!-- figures:coverage-version -->`0+an-older-version"),
        "README.md": texts["README.md"].replace("<!-- /figures:readme-mts-agreement -->", ""),
    }
    problems = figures.cheap_problems(stale)
    assert any("figure 'mts-agreement' lacks the line '| FactualRecall | rouge1 | 200 | 0.42" in p
               for p in problems), problems
    assert any("figure 'shrout-fleiss'" in p for p in problems)
    assert any("figure 'coverage-version'" in p for p in problems)
    assert any("README.md: a figure block is not closed" in p for p in problems)


def test_every_figure_block_has_a_generator_and_shell_examples_quote_comparisons(figures) -> None:
    import re

    for document, text in figures.documents().items():
        for name in figures.blocks(text):
            assert name in figures.FIGURES, (document, name)
        # `--flag x>=1` unquoted is a shell redirection: every example quotes it
        unquoted = re.findall(r"--(?:human-)?flag [A-Za-z_]+[<>]", text)
        assert unquoted == [], (document, unquoted)
