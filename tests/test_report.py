"""The documents are rendered from the committed tables: a hand edit or a stale table fails here."""
import shutil

import pandas as pd
import pytest

from provlib import report
from provlib.core.errors import ParameterError
from provlib.core.paths import REPO_ROOT


def copy_documents(into):
    """What rendering reads besides the tables: the documents, and the figures and HTML they link when present."""
    for name in ("README.md", "docs", "figures"):
        source = REPO_ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, into / name)


def test_committed_documents_equal_what_the_committed_tables_render():
    differing = report.render(check=True)
    assert not differing, (f"{[str(p.relative_to(REPO_ROOT)) for p in differing]} differ from data/results/: "
                           "run `python -m provlib report` (never edit rendered numbers by hand)")


def test_a_hand_edited_number_in_the_readme_block_is_caught(tmp_path):
    copy_documents(tmp_path)
    readme = tmp_path / "README.md"
    text = readme.read_text()
    block = text.split(report.README_BEGIN)[1].split(report.README_END)[0]
    edited = block.replace("/", "//", 1)  # one rate's count changed
    assert edited != block
    readme.write_text(text.replace(block, edited))
    assert report.render(results=REPO_ROOT / "data" / "results", root=tmp_path, check=True) == [readme]


def test_a_changed_table_is_caught(tmp_path):
    shutil.copytree(REPO_ROOT / "data" / "results", tmp_path / "results")
    copy_documents(tmp_path)
    naming = pd.read_csv(tmp_path / "results" / "source_attribution_confusion.csv")
    naming.iloc[0, 1] += 1  # one more test model named right
    naming.to_csv(tmp_path / "results" / "source_attribution_confusion.csv", index=False)
    differing = report.render(results=tmp_path / "results", root=tmp_path, check=True)
    assert tmp_path / "README.md" in differing and tmp_path / "docs" / "results.md" in differing


def test_exact_interval_is_clopper_pearson():
    # reference values: Clopper-Pearson 95 % for 0/10, 3/10 and 10/10
    assert report.exact_interval(0, 10) == pytest.approx((0.0, 0.308498), abs=1e-6)
    assert report.exact_interval(3, 10) == pytest.approx((0.066740, 0.652453), abs=1e-6)
    assert report.exact_interval(10, 10) == pytest.approx((0.691502, 1.0), abs=1e-6)
    assert report.rate(3, 10) == "3/10 = 0.30 [0.07, 0.65]"


def test_welch_interval_contains_the_difference_and_narrows_with_n():
    small = report.welch_interval(0.5, 0.1, 4, 0.1, 0.1, 4)
    large = report.welch_interval(0.5, 0.1, 40, 0.1, 0.1, 40)
    assert small[0] < 0.4 < small[1] and small[1] - small[0] > large[1] - large[0]


def test_markdown_table_rounds_and_escapes():
    text = report.markdown_table(pd.DataFrame({"a|b": ["x|y"], "v": [0.123456]}), digits=2)
    assert text.splitlines() == ["| a|b | v |", "| --- | --- |", "| x\\|y | 0.12 |"]


def test_missing_markers_or_folder_name_the_parameter(tmp_path):
    with pytest.raises(ParameterError, match="README.md"):
        report.replace_block("no markers here", "block")
    with pytest.raises(ParameterError, match="results"):
        report.Tables(tmp_path / "nowhere")


def test_replicate_scores_a_run_and_replaces_its_own_rows(tmp_path):
    into = tmp_path / "replications.csv"
    first = report.replicate(REPO_ROOT / "data" / "results", "same-run", into=into)
    again = report.replicate(REPO_ROOT / "data" / "results", "same-run", into=into)
    assert len(first) == len(again) == len(pd.read_csv(into)) and first.met.isin([True, False]).all()
    assert set(first.target) == {t.name for t in report.TARGETS}


def test_executed_notebooks_become_html_with_their_figures(tmp_path):
    import base64

    import nbformat

    png = base64.b64encode(bytes.fromhex("89504e470d0a1a0a")).decode()  # a PNG signature is enough for the embed
    cell = nbformat.v4.new_code_cell("plot()", outputs=[nbformat.v4.new_output("display_data", {"image/png": png})])
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), tmp_path / "01_example.ipynb")
    written = report.export_html(tmp_path, tmp_path / "html")
    assert written == [tmp_path / "html" / "01_example.html"]
    assert f"data:image/png;base64,{png}" in written[0].read_text()
    with pytest.raises(ParameterError, match="--html"):
        report.export_html(tmp_path / "html", tmp_path / "none")  # a folder without executed notebooks
