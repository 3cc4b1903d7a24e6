"""The HTML report: self-contained, and every number it states is the summaries' number."""

import re

import numpy as np
import pytest

from analysis import report
from analysis.measures import summarize
from models import engine
from tests.test_analysis import _study


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Four cells (tau 0.5, 2 x group_size 5, 20) of two specs fitted on the same data sets:
    flat (each group's own estimate) and hierarchical (shrunk toward the replicate's mean)."""
    folder = tmp_path_factory.mktemp("study")
    df = _study(np.random.default_rng(11), 4, 30, 8)
    df["prior"] = df["prior"].replace({"shrunk": "hierarchical"})
    df["tau"] = np.where(df["seed"] % 2 == 0, 0.5, 2.0)
    df["group_size"] = np.where(df["seed"] < 2, 5, 20)
    df["method"], df["ess_bulk"], df["code_version"] = "nuts", 400.0, "v1"
    df["results_version"] = engine.RESULTS_VERSION
    for h, part in df.groupby("config_hash"):
        part.to_parquet(folder / f"{h}.parquet", index=False)
    return folder, df


def _text(page: str) -> str:
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_report_is_self_contained_and_states_the_summaries_numbers(results):
    folder, df = results
    path = report.write(folder)
    page = path.read_text()
    # offline: every image is embedded, nothing is fetched
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    assert "http://" not in page and "https://" not in page
    # the pooling claim: the range of the hierarchical / flat RMSE ratio and the count of cells
    # where it is detectably below 1, against an independent call of the measures
    h = summarize(df, reference="flat").query("prior == 'hierarchical'")
    text = _text(page)
    low = h.loc[h["rmse_ratio"].idxmin()]
    assert f"ranges from {low['rmse_ratio']:.2f} ± {low['rmse_ratio_mcse']:.2f}" in text
    detectable = int((h["rmse_ratio"] + 2 * h["rmse_ratio_mcse"] < 1).sum())
    assert f"in {detectable} of 4 cells detectably" in text
    # the flat prior's coverage range, as percentages
    f = summarize(df, reference="flat").query("prior == 'flat'")
    assert f"cover {100 * f['coverage_90'].min():.0f} %–{100 * f['coverage_90'].max():.0f} %" in text
    assert (folder / "analysis" / "summaries.parquet").exists()
    assert not list(folder.glob(".*.tmp"))


def test_report_says_what_a_study_lacks(results, tmp_path):
    """Without the specs a question needs, the report names them instead of answering."""
    folder, df = results
    only = df[df["prior"] == "flat"]
    for h, part in only.groupby("config_hash"):
        part.to_parquet(tmp_path / f"{h}.parquet", index=False)
    text = _text(report.write(tmp_path).read_text())
    assert "This study has no fits of hierarchical" in text
    assert "This study has no fits of student_t, normal_inv_chi2" in text
    assert "no heavy-tailed effects" not in text or "t_effects" in text


def test_report_refuses_one_job_from_two_versions_unless_asked(results, tmp_path, capsys):
    """Two files of one job from different code versions: one line naming both, nothing written;
    ``allow_mixed=true`` reads both as separate jobs."""
    folder, df = results
    one = df[df["config_hash"] == df["config_hash"].iloc[0]]
    one.to_parquet(tmp_path / "a.parquet", index=False)
    one.assign(config_hash="0123456789ab", code_version="other").to_parquet(
        tmp_path / "b.parquet", index=False
    )
    with pytest.raises(SystemExit) as err:
        report.main([f"results_dir={tmp_path}"])
    message = str(err.value)
    assert message.startswith("error: ") and "\n" not in message
    assert "a.parquet" in message and "b.parquet" in message and "allow_mixed=true" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "b.parquet"]
    with pytest.raises(SystemExit, match="allow_mixed='maybe' is not allowed: true or false"):
        report.main([f"results_dir={tmp_path}", "allow_mixed=maybe"])
    report.main([f"results_dir={tmp_path}", "allow_mixed=true"])
    assert (tmp_path / "report.html").exists()
