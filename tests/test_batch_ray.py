"""Batch scoring on Ray Data (`sentitune predict RUN --input F --output F --engine ray`): the local engine's
output (rows in input order, the same probabilities), one-line errors, a clear message without Ray. Ray runs in
a subprocess with a timeout (a job whose actors hold every CPU hangs: the test must fail, not hang), and its
local instance stops with it."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_batch import read_output, write_input
from test_cli import sentitune

from sentitune.core.errors import SentituneError
from sentitune.inference.batch import score_file
from sentitune.inference.batch_ray import _actor_resources

EMPTY_AND_TRICKY = ["", 'line one\nline two, "quoted"; tab\there \u2028 and ünïcode']


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    """45 reviews with an id column; one text is empty, one holds a newline, quotes, a tab and U+2028."""
    from conftest import synthetic_reviews

    df = synthetic_reviews(22, seed=5).head(43)[["text", "movie"]]
    df = pd.concat([df, pd.DataFrame({"text": EMPTY_AND_TRICKY, "movie": ["tt8", "tt9"]})], ignore_index=True)
    return df.assign(id=[f"r{i:03d}" for i in range(len(df))])[["id", "text", "movie"]]


def ray_predict(model: Path, source: Path, target: str, *flags: str) -> subprocess.CompletedProcess:
    """`sentitune predict --engine ray` with a local Ray instance of 2 actors, in a subprocess bounded in time."""
    return subprocess.run([sys.executable, "-m", "sentitune", "predict", str(model), "--input", str(source),
                           "--output", target, "--engine", "ray", "--workers", "2", "--chunk-size", "8", *flags],
                          capture_output=True, text=True, timeout=300, cwd=source.parent)


@pytest.mark.parametrize("source, target", [("parquet", "parquet"), ("csv", "tsv"), ("txt", "-")])
def test_ray_engine_gives_the_local_engines_predictions(tiny_model, reviews, tmp_path, source, target):
    pytest.importorskip("ray")
    data = write_input(reviews, tmp_path / f"in.{source}")
    local_out = tmp_path / f"local.{'jsonl' if target == '-' else target}"
    summary = score_file(tiny_model, data, local_out, chunk_size=8, progress=False)
    ray_out = "-" if target == "-" else str(tmp_path / f"ray.{target}")
    result = ray_predict(tiny_model, data, ray_out)
    assert result.returncode == 0, result.stderr[-3000:]
    empty = f", {summary['empty']} empty text(s) left unscored" if summary["empty"] else ""
    assert f"wrote {'stdout' if target == '-' else ray_out}: {summary['rows']} rows in " in result.stderr
    assert result.stderr.rstrip().endswith(empty)
    local = read_output(local_out)
    ray = pd.read_json(io.StringIO(result.stdout), lines=True, dtype=False) if target == "-" else \
        read_output(Path(ray_out))
    assert list(ray.columns) == list(local.columns)
    assert ray.text.fillna("").tolist() == local.text.fillna("").tolist()  # the same rows, in input order
    assert ray.label.fillna("").tolist() == local.label.fillna("").tolist()
    probs = ["confidence", "prob_LABEL_0", "prob_LABEL_1"]
    assert np.allclose(ray[probs].to_numpy(float), local[probs].to_numpy(float), rtol=1e-5, atol=1e-6,
                       equal_nan=True)
    written = [f"in.{source}", local_out.name] + ([] if target == "-" else [f"ray.{target}"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(written)  # no parts folder, no temporary file


def test_ray_engine_errors_are_one_line_and_leave_nothing(tiny_model, reviews, tmp_path):
    pytest.importorskip("ray")
    data = write_input(reviews, tmp_path / "in.parquet")
    result = ray_predict(tiny_model, data, str(tmp_path / "out.parquet"), "--text-column", "review")
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (f"error: --input {data}: no column 'review'; columns found: "
                                                      "['id', 'text', 'movie']; pass --text-column.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_an_address_where_nothing_listens_is_one_line_not_a_hang(tiny_model, reviews, tmp_path):
    pytest.importorskip("ray")
    data = write_input(reviews, tmp_path / "in.parquet")
    result = ray_predict(tiny_model, data, str(tmp_path / "out.parquet"), "--ray-address", "127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --ray-address 127.0.0.1:1: nothing answers there")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_without_ray_the_engine_says_what_to_install(tiny_model, reviews, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    data = write_input(reviews, tmp_path / "in.parquet")
    result = sentitune("predict", str(tiny_model), "--input", str(data), "--output", str(tmp_path / "out.parquet"),
                       "--engine", "ray")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --engine ray: needs ray; pip install 'sentitune[ray]'."


@pytest.mark.parametrize("flags, message", [
    (["--input", "-", "--output", "out.parquet", "--engine", "ray"], "--input -: Ray's workers cannot read"),
    (["--input", "in.parquet", "--output", "out.parquet", "--engine", "ray", "--resume"], "--resume: --engine ray"),
    (["--input", "in.parquet", "--output", "out.parquet", "--engine", "spark"], "--engine spark: use local or ray"),
    (["--input", "in.parquet", "--output", "out.parquet", "--engine", "ray", "--workers", "0"], "--workers 0"),
])
def test_ray_engine_refuses_what_it_cannot_do(tiny_model, reviews, tmp_path, flags, message):
    write_input(reviews, tmp_path / "in.parquet")
    result = sentitune("predict", str(tiny_model), *flags, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


class FakeRay:
    """What `_actor_resources` asks Ray: the cluster's CPUs and each node's."""

    def __init__(self, *node_cpus: float):
        self.node_cpus = node_cpus

    def cluster_resources(self) -> dict:
        return {"CPU": sum(self.node_cpus)}

    def nodes(self) -> list[dict]:
        return [{"Alive": True, "Resources": {"CPU": c}} for c in self.node_cpus]


@pytest.mark.parametrize("nodes, workers, threads, expected", [
    ((2,), 2, None, (0.5, 1)),  # 2 actors of 1 CPU each on 2 CPUs would leave none for reading: a hang
    ((16,), 2, None, (7.0, 7)),  # 7 threads, 7 CPUs
    ((16,), 2, 2, (2.0, 2)),
    ((8, 8, 8, 8), 2, None, (8.0, 8)),  # no actor bigger than a node
])
def test_actors_leave_a_cpu_for_reading_and_writing(nodes, workers, threads, expected):
    assert _actor_resources(FakeRay(*nodes), workers, threads) == expected


def test_a_one_cpu_cluster_is_refused():
    with pytest.raises(SentituneError, match="1 CPU"):
        _actor_resources(FakeRay(1), 2, None)
