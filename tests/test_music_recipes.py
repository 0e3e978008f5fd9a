"""The recipes of the four classic polyphonic benchmarks (JSB Chorales, Nottingham, MuseData,
Piano-midi.de): each validates with ``seqkit validate --set data.source.path=...`` on a
generated pickle of the Boulanger-Lewandowski layout, and each header states what it must."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from seqkit.cli import cli
from seqkit.safe_yaml import parse_yaml

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
DATASETS = ("jsb", "nottingham", "musedata", "pianomidi")
NAMES = [f"music_{d}_{kind}.yaml" for d in DATASETS for kind in ("chung2014", "best")]
PAPER = {  # Chung et al. 2014's GRU, Boulanger-Lewandowski et al. 2012's RNN-NADE
    "jsb": ("8.54", "5.56"),
    "nottingham": ("3.23", "2.31"),
    "musedata": ("5.99", "5.60"),
    "pianomidi": ("8.82", "7.05"),
}


def write_bl_pickle(path: Path, seed: int = 0) -> None:
    """The B-L layout: {'train', 'valid', 'test'} -> pieces -> steps -> MIDI notes sounding."""
    rng = np.random.default_rng(seed)

    def piece():
        return [
            sorted({int(n) for n in rng.integers(21, 109, size=rng.integers(0, 5))})
            for _ in range(int(rng.integers(20, 60)))
        ]

    data = {split: [piece() for _ in range(n)] for split, n in (("train", 6), ("valid", 3),
                                                                ("test", 3))}  # fmt: skip
    path.write_bytes(pickle.dumps(data, protocol=2))


@pytest.fixture(scope="module")
def bl_pickle(tmp_path_factory):
    path = tmp_path_factory.mktemp("bl") / "Generated.pickle"
    write_bl_pickle(path)
    return path


def test_every_dataset_has_both_recipes():
    for name in NAMES:
        assert (RECIPES / name).is_file(), name


@pytest.mark.parametrize("name", [*NAMES, "music_jsb_nade.yaml"])
def test_recipe_validates_on_a_generated_pickle(name, bl_pickle):
    res = CliRunner().invoke(
        cli, ["validate", str(RECIPES / name), "--set", f"data.source.path={bl_pickle}"]
    )
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("name", NAMES)
def test_recipe_header_states_figures_and_command(name):
    text = (RECIPES / name).read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    doc = parse_yaml(text)
    dataset = name.split("_")[1]
    assert doc["name"] == name.removesuffix(".yaml")
    assert doc["data"]["source"]["type"] == "pianoroll_pickle"
    assert doc["seed"] == 0
    assert f"seqkit train recipes/{name}" in header
    assert "Expected" in header and "measured" in header.lower()
    gru, nade = PAPER[dataset]
    assert gru in header  # the paper's figure for this setting or the reference beside it
    if name.endswith("_best.yaml"):
        assert nade in header
        if dataset != "jsb":  # JSB's best is whichever measured lower (its header says)
            assert doc["task"]["output"] == "nade"
    if dataset in ("musedata", "pianomidi"):
        assert "boulanni/icml2012" in header and "--set data.source.path=" in header
