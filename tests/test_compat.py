"""Names and module paths of seqkit 0.1 keep working after the package was reorganised.

Plugins and scripts import `seqkit.layers`, `seqkit.registry`, `seqkit.features` (which did not
move) and paths that did (`seqkit.train`, `seqkit.sources`, `seqkit.streaming`, ...): each old
path must give the very object the new module holds (`seqkit.compat`).
"""

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import seqkit

# old module -> {name: new module that defines it}
OLD_PATHS = {
    "seqkit.train": {"train": "seqkit.training.trainer", "Run": "seqkit.runs",
                     "load_model": "seqkit.runs", "plan_run_dir": "seqkit.runs",
                     "data_fingerprint": "seqkit.runs", "build_model": "seqkit.build",
                     "check_recipe": "seqkit.build", "load_data": "seqkit.build",
                     "make_task": "seqkit.build", "RUN_FILES": "seqkit.runs"},
    "seqkit.fit": {"Checkpointer": "seqkit.training.fit", "fit": "seqkit.training.fit",
                   "sha256": "seqkit.runs", "save_model_atomic": "seqkit.runs"},
    "seqkit.distribute": {"setup": "seqkit.training.distribute",
                          "tf_config": "seqkit.training.distribute"},
    "seqkit.augment": {"TimeShift": "seqkit.speech.augment", "BatchMaker": "seqkit.speech.augment",
                       "TrainBatches": "seqkit.speech.augment"},
    "seqkit.sources": {"SpeechCommands": "seqkit.speech.sources.speech_commands",
                       "FilenamePattern": "seqkit.speech.sources.pattern",
                       "Manifest": "seqkit.speech.sources.manifest",
                       "STANDARD_WORDS": "seqkit.speech.sources.common"},
    "seqkit.synth": {"synthesize": "seqkit.speech.sources.synthetic",
                     "SyntheticSpeech": "seqkit.speech.sources.synthetic",
                     "Espeak": "seqkit.speech.sources.espeak",
                     "make_speakers": "seqkit.speech.sources.espeak"},
    "seqkit.streaming": {"load_for_inference": "seqkit.inference",
                         "Detector": "seqkit.speech.streaming.runtime",
                         "FeatureStream": "seqkit.speech.streaming.features",
                         "ModelStream": "seqkit.speech.streaming.model"},
    "seqkit.streaming.runtime": {"Streamer": "seqkit.speech.streaming.runtime"},
    "seqkit.music.tasks": {"Polyphonic": "seqkit.music.task", "Melody": "seqkit.music.melody",
                           "StepNLLLoss": "seqkit.music.losses",
                           "nll_per_step": "seqkit.music.metrics",
                           "SequenceBatches": "seqkit.music.batches",
                           "melody_events": "seqkit.music.rolls",
                           "WeightNoise": "seqkit.music.callbacks"},
    "seqkit.music.sources": {"Music21Corpus": "seqkit.music.scores",
                             "AudioFolder": "seqkit.music.recordings",
                             "MidiFolder": "seqkit.music.sources"},
    "seqkit.data": {"FolderSource": "seqkit.speech.sources.folder",
                    "SyntheticTones": "seqkit.speech.sources.tones",
                    "Example": "seqkit.data", "which_set": "seqkit.data"},
    "seqkit.tasks": {"KeywordSpotting": "seqkit.speech.task", "Task": "seqkit.tasks"},
    "seqkit.layers": {"GRU": "seqkit.layers", "GRUCell": "seqkit.layers"},
    "seqkit.features": {"Load": "seqkit.features", "FeaturePipeline": "seqkit.features"},
    "seqkit.registry": {"LAYERS": "seqkit.registry", "load_plugin_layers": "seqkit.registry"},
}  # fmt: skip


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_module_paths_give_the_new_objects(old):
    module = importlib.import_module(old)
    for name, new in OLD_PATHS[old].items():
        assert getattr(module, name) is getattr(importlib.import_module(new), name), (old, name)


def test_from_import_of_old_paths():
    from seqkit.streaming import load_for_inference
    from seqkit.train import Run, train

    from seqkit.inference import load_for_inference as new_load
    from seqkit.runs import Run as NewRun
    from seqkit.training import train as new_train

    assert (train, Run, load_for_inference) == (new_train, NewRun, new_load)


def test_a_module_that_moved_whole_is_the_same_module():
    import seqkit.augment

    import seqkit.speech.augment

    assert seqkit.augment is seqkit.speech.augment
    assert seqkit.speech.augment.__spec__.name == "seqkit.speech.augment"  # its own name kept


def test_every_public_name_resolves():
    for name in seqkit.__all__:
        assert getattr(seqkit, name) is not None, name
    with pytest.raises(AttributeError):
        seqkit.no_such_name  # noqa: B018


def test_unknown_names_of_an_old_split_module_say_where_it_moved():
    import seqkit.train

    with pytest.raises(AttributeError, match=r"moved to seqkit.training.trainer, seqkit.runs"):
        seqkit.train.no_such_name  # noqa: B018


def test_importing_seqkit_stays_free_of_keras():
    code = "import sys, seqkit, seqkit.registry, seqkit.recipe, seqkit.features; " \
           "print(sorted(m for m in ('keras', 'tensorflow', 'matplotlib') if m in sys.modules))"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- saved models load after a plain `import seqkit`, whichever of seqkit and Keras comes first --

STORED_RUNS = Path(__file__).parent / "data" / "runs_0_1_0"

LOAD_BOTH = """
import sys
{first}
kws = keras.models.load_model(sys.argv[1])
music = keras.models.load_model(sys.argv[2])
from seqkit.layers import GRU
from seqkit.music.losses import StepNLLLoss
assert any(isinstance(layer, GRU) for layer in kws.layers), kws.layers
assert isinstance(music.loss, StepNLLLoss), music.loss
assert keras.__loader__ is keras.__spec__.loader  # Keras' own loader, not a wrapper
assert type(keras.__loader__).__name__ == "SourceFileLoader", keras.__loader__
import seqkit.compat
assert seqkit.compat._Finder().find_spec("keras") is None  # registered once; the hook is done
print("loaded", type(music.loss).__name__)
"""


@pytest.mark.parametrize("first", ["import seqkit; import keras", "import keras; import seqkit"])
def test_import_seqkit_is_enough_to_load_a_saved_model(tmp_path, first):
    for name in ("kws_run", "music_run"):
        shutil.copytree(STORED_RUNS / name, tmp_path / name)
    out = subprocess.run(
        [sys.executable, "-c", LOAD_BOTH.format(first=first),
         str(tmp_path / "kws_run" / "model.keras"), str(tmp_path / "music_run" / "model.keras")],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "loaded StepNLLLoss"


REGISTERED = """
import logging, sys
logging.basicConfig(level=logging.WARNING)
import {first}
import keras
names = ["seqkit>GRU", "seqkit>StepNLLLoss", "seqkit>NLLPerStep", "seqkit>NadeKeys"]
print([n for n in names if keras.saving.get_registered_object(n) is None])
"""


@pytest.mark.parametrize("first", ["seqkit.music.nade", "seqkit.music.losses", "seqkit.layers",
                                   "seqkit.music.task"])  # fmt: skip
def test_any_keras_objects_module_imported_first_registers_them_all(first):
    # Regression: `import seqkit.music.nade` first made Keras' import hook import the losses
    # while nade was half initialised; their `from .nade import NadeKeys` failed and neither
    # the losses nor the layer were registered (a logged warning; saved models did not load).
    out = subprocess.run(
        [sys.executable, "-c", REGISTERED.format(first=first)],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"
    assert "could not be registered" not in out.stderr
