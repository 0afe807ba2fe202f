"""``tfmcourse grade --scheduler ADDRESS`` grades on a dask.distributed cluster (here a LocalCluster)."""
from __future__ import annotations

import csv

import pytest

from tfmcourse.grading import cli
from tfmcourse.grading.testing import blank_source, reference_source, write_notebook

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed "
                                                        "(pip install distributed, or the grading extra)")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning", "ignore::UserWarning")
def test_grade_on_a_dask_cluster(tmp_path):
    subs = tmp_path / "subs"
    write_notebook(subs / "ada" / "ch03_qkv.ipynb", reference_source("ch03"))
    write_notebook(subs / "bob" / "ch03_qkv.ipynb", blank_source("ch03"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        code = cli.main([str(subs), "--scheduler", cluster.scheduler_address, "--out", str(tmp_path / "gb.csv"), "-q"])
    assert code == 0
    rows = {r["student"]: r for r in csv.DictReader((tmp_path / "gb.csv").open())}
    assert rows["ada"]["chapter"] == "ch03" and rows["ada"]["percent"] == "100.0"
    assert rows["bob"]["score"] == "0" and rows["bob"]["status"] == "graded"
    assert (tmp_path / "feedback_ch03" / "bob.md").exists()
