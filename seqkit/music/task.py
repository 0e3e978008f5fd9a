"""Music tasks: ``polyphonic`` (next-step piano-roll model) and ``melody`` (MelodyRNN-style
events). Both predict **every** step of every sequence: the input at step ``t`` is the target
at ``t - 1`` (a zero vector at ``t = 0``), so the output at ``t`` sees steps ``0 .. t-1``.

**nll_per_step** (``polyphonic``), as in Boulanger-Lewandowski et al. 2012 and Chung et al.
2014: the model gives each of the K keys (88, or the ``pitch_range``) a probability ``p[t, k]``
of sounding at step ``t``; the negative log-likelihood of step ``t`` is

    NLL_t = - sum_k ( v[t, k] log p[t, k] + (1 - v[t, k]) log(1 - p[t, k]) )

(natural log, summed over the keys, ``v`` the true 0/1 roll), and ``nll_per_step`` is the mean
of ``NLL_t`` over **every time step of the split**, each step weighted equally: the sum over
all steps of all sequences divided by the number of steps -- not a mean per sequence, per
batch or per key. Padding steps are excluded. Probabilities are clipped to
``[1e-7, 1 - 1e-7]`` (Keras' epsilon), which bounds one key's cost at 16.1 nats. The first
step of a sequence is predicted from nothing; ``nll_per_step_after_first`` leaves those out
(the convention of code that predicts ``x[1:]`` from ``x[:-1]``, e.g. locuslab/TCN).
Keys outside ``pitch_range`` are modelled as never sounding (their notes are dropped, with a
warning and a count), so they add nothing to the sum. With ``components: M > 1`` (a mixture of
M independent-key distributions per step, see ``Polyphonic``) ``NLL_t = -ln P(v_t | v_<t)``
is that mixture's probability of the whole step, averaged the same way; with M = 1 it is the
sum above. With ``output: nade`` (RNN-NADE, ``seqkit.music.nade``) ``NLL_t = -ln P(v_t |
v_<t)`` of the NADE's joint distribution over the keys, which is exactly the sum above with
``p[t, k]`` the NADE's conditional of key ``k`` given the true lower keys of step ``t``.

**frame_accuracy**: Bay et al. 2009, as reported by Boulanger-Lewandowski et al. 2012:
``TP / (TP + FP + FN)``, the counts summed over every step of the split, a key predicted on
when ``p >= threshold`` (task parameter, default 0.5: the most likely value of each key).
With ``output: nade``, ``p`` is each key's conditional given the *true* lower keys of its step
(what the model computes in one pass; not the key's marginal, which would need sampling), so
that figure is not strictly comparable with the independent-key models' one.

``melody``: one event per step from ``2 + (max_note - min_note + 1)`` classes -- 0 *hold*
(no event: the note or silence before continues), 1 *rest* (note off), ``2 + i`` *note on*
of pitch ``min_note + i`` -- as Magenta's MelodyRNN one-hot encoding; a softmax over them;
``nll_per_step`` is the mean over every step of ``-log p(true event)``, ``accuracy`` the share
of steps whose most likely event is the true one. Melodies come from any music source: the
highest sounding note (a part's only note for a one-part score or a pYIN transcription).

Training feeds whole sequences, or with ``chunk_length`` fixed windows of that many scored
steps, each preceded by up to ``chunk_warmup`` earlier steps that warm the state up unscored
(sample weight 0); with ``bucket: true`` (both tasks) each batch holds sequences (windows) of
similar length and is padded only to its own longest (``seqkit.music.batches``; validation
batches too), instead of every batch padded to the split's longest; padding always has
weight 0, so the loss (cross-entropy summed over keys, divided by the number of real steps in
the batch) is the batch's NLL per step. Validation
and test always use whole sequences. The monitor ``val_nll_per_step`` is computed in the
graph over the whole validation split with the same definition; ``evaluate`` recomputes it in
numpy (float64) from the model's probabilities.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from ..errors import DataError, ParameterError, fraction, positive_int
from ..tasks import SPLITS, Outline, Parts, Settings, Split, Task, TaskData
from .batches import SequenceBatches, _round_up, predict_sequences
from .callbacks import SampleWriter, WeightNoise
from .losses import FrameAccuracy, NLLPerStep, StepNLLLoss
from .metrics import (
    EPSILON,
    frame_accuracy,
    mixture_marginals,
    mixture_parts,
    mixture_step_nll,
    step_nll,
)
from .nade import LAYER_NAME, NadeKeys, nade_weights, sample_nade, state_model
from .rolls import (
    KEYS,
    LOWEST,
    notes_to_roll,
    roll_to_notes,
    shifted_inputs,
    transpose_limits,
)

log = logging.getLogger("seqkit")

OUTPUTS = ("independent", "nade")
MUSIC_SOURCES_HINT = "pianoroll_pickle, pianoroll_npz, midi_folder, music21_corpus, audio_folder"


# -- numpy metrics (the reference definitions) ---------------------------------------------------


# -- Keras loss and metrics (in the graph; the same definitions) --------------------------------


# -- batches -------------------------------------------------------------------------------------


# -- melody events -------------------------------------------------------------------------------


# -- the tasks -----------------------------------------------------------------------------------


class MusicTask(Task):
    """What the two music tasks share: a music source, no feature steps, no normalisation,
    next-step inputs, batches, ``val_nll_per_step`` as the monitor, sampling during training."""

    monitor = "val_nll_per_step"
    mode = "min"
    uses_audio_features = False
    normalize_default = False
    needs_sequences = True
    kind = "bernoulli"

    def _common(self, transpose, chunk_length, chunk_warmup, dropout, sample_every, sample_steps,
                weight_noise=0.0, bucket=False):  # fmt: skip
        if (
            isinstance(transpose, bool)
            or not isinstance(transpose, int)
            or not 0 <= transpose <= 24
        ):
            raise ParameterError(
                f"`transpose` must be an integer 0..24 (semitones up or down); received {transpose!r}."
            )
        self.transpose = transpose
        self.chunk_length = (
            None if chunk_length is None else positive_int("chunk_length", chunk_length)
        )
        if isinstance(chunk_warmup, bool) or not isinstance(chunk_warmup, int) or chunk_warmup < 0:
            raise ParameterError(
                f"`chunk_warmup` must be an integer >= 0; received {chunk_warmup!r}."
            )
        if chunk_warmup and not chunk_length:
            raise ParameterError("`chunk_warmup` needs `chunk_length`; set both or neither.")
        self.chunk_warmup = chunk_warmup
        self.dropout = fraction("dropout", dropout)
        if isinstance(sample_every, bool) or not isinstance(sample_every, int) or sample_every < 0:
            raise ParameterError(
                f"`sample_every` must be an integer >= 0 (epochs; 0 = never); received {sample_every!r}."
            )
        self.sample_every = sample_every
        self.sample_steps = positive_int("sample_steps", sample_steps)
        if (
            not isinstance(weight_noise, (int, float))
            or isinstance(weight_noise, bool)
            or not (0 <= weight_noise < 1)
        ):
            raise ParameterError(
                f"`weight_noise` must be a standard deviation in [0, 1) (Chung et al.: 0.075); "
                f"received {weight_noise!r}."
            )
        self.weight_noise = float(weight_noise)
        if not isinstance(bucket, bool):
            raise ParameterError(f"`bucket` must be true or false; received {bucket!r}.")
        self.bucket = bucket
        self._skip = 0
        self.seed = 0
        self._batch_size = 32

    # recipe checks

    def check(self, outline: Outline, source) -> list[tuple[str, str]]:
        problems = []
        name = type(self).__name__.lower()
        if outline.features:
            problems.append(
                (
                    "features",
                    f"the {name} task reads piano rolls, not audio features; remove `features`",
                )
            )
        if getattr(source, "kind", None) != "music":
            problems.append(
                (
                    "data.source.type",
                    f"the {name} task needs a music source ({MUSIC_SOURCES_HINT}); received "
                    f"'{outline.source}'",
                )
            )
        for i, (_, params) in enumerate(outline.layers):
            for key in ("bidirectional", "go_backwards"):
                if params.get(key):
                    problems.append(
                        (f"model.layers[{i}].{key}", f"a next-step model must not see the future "
                         f"(the {name} task predicts step t from steps before t); remove it")
                    )  # fmt: skip
        if outline.normalize:
            problems.append(
                (
                    "model.normalize",
                    f"the {name} task's inputs are 0/1 (piano rolls, one-hot events); remove it or set false",
                )
            )
        return problems

    def dummy_input_shape(self) -> tuple:
        return (None, self.dummy_info()["inputs"])

    # data

    def _load(self, parts: Parts, settings: Settings):
        self.seed = settings.seed
        source = parts.source
        if getattr(source, "kind", None) != "music":
            raise DataError(
                f"The {type(self).__name__.lower()} task needs a music source "
                f"({MUSIC_SOURCES_HINT}); received '{settings.source}'."
            )
        return source.load(cache=settings.cache)

    def _task_data(self, music, targets: dict, info: dict, settings: Settings) -> TaskData:
        for split in ("train", "validation"):
            if not targets.get(split):
                raise DataError(
                    f"The {split} split is empty ({len(music.pieces)} usable pieces in all); "
                    "add more files or change data.source's validation_percent / test_percent."
                )
        splits = {}
        for split in SPLITS:
            if targets.get(split):
                names, ys = zip(*targets[split])
                xs = [self.encode(y)[0] for y in ys]
                splits[split] = Split(list(xs), list(ys), items=list(names))
        info |= {
            "task": settings.task,
            "source": settings.source,
            "time_step": music.time_step,
            "examples": {s: len(splits[s]) for s in splits},
            "steps": {s: int(sum(len(y) for y in splits[s].y)) for s in splits},
            "skipped": music.skipped,
            "notes_dropped": music.notes_dropped,
        }
        longest = max(len(y) for y in splits["train"].y)
        if not self.chunk_length and not self.bucket and longest > 2000:
            log.warning(
                "The longest training sequence has %d steps and every batch is padded to it; "
                "set task.chunk_length (e.g. 256) to train on windows.",
                longest,
            )
        return TaskData(splits, (None, info["inputs"]), info)

    def _train_batches(self, data: TaskData, batch_size: int, seed: int) -> SequenceBatches:
        self._batch_size = batch_size
        key = (id(data), batch_size, seed)
        if getattr(self, "_train_key", None) != key:
            self._train_key = key
            self._train_ds = SequenceBatches(
                data.splits["train"].y,
                self.encode,
                batch_size,
                chunk=self.chunk_length,
                warmup=self.chunk_warmup,
                shuffle=True,
                augment=self._augment(data.info) if self.transpose else None,
                seed=seed,
                bucket=self.bucket,
            )
        return self._train_ds

    def epoch_inputs(self, data: TaskData, epoch: int, batch_size: int, seed: int,
                     skip_batches: int = 0) -> dict:  # fmt: skip
        """One epoch of training batches, a pure function of (seed, epoch)."""
        ds = self._train_batches(data, batch_size, seed)
        ds.set_epoch(epoch, skip_batches)
        self._skip = int(skip_batches)
        return {"x": ds}

    def fit_inputs(self, data: TaskData, batch_size: int) -> dict:
        """All epochs in one ``model.fit`` (the dataset moves to the next epoch by itself)."""
        return {"x": self._train_batches(data, batch_size, self.seed)}

    def validation_data(self, data: TaskData):
        key = (id(data), self._batch_size)
        if getattr(self, "_val_key", None) != key:
            self._val_key = key
            self._val_ds = SequenceBatches(
                data.splits["validation"].y, self.encode, self._batch_size, bucket=self.bucket
            )
        return self._val_ds

    # model

    def compile_args(self) -> dict:
        return {
            "loss": StepNLLLoss(kind=self.kind),
            "weighted_metrics": self._metrics(),
        }

    def callbacks(self, run_dir, data: TaskData) -> list:
        out = []
        if self.weight_noise:
            out.append(WeightNoise(self, self.weight_noise))
        if self.sample_every:
            out.append(SampleWriter(self, data.info, run_dir / "logs" / "samples",
                                    self.sample_every, self.sample_steps, self.seed))  # fmt: skip
        return out

    def summary(self, metrics: dict) -> list[str]:
        out = []
        for split in ("validation", "test"):
            if split in metrics:
                m = metrics[split]
                extra = (
                    f", frame accuracy {m['frame_accuracy']:.4f}"
                    if "frame_accuracy" in m
                    else f", accuracy {m['accuracy']:.4f}"
                )
                out.append(
                    f"{split} nll_per_step: {m['nll_per_step']:.4f}{extra} ({m['sequences']} "
                    f"sequences, {m['steps']} steps, best epoch {metrics['best_epoch']})"
                )
        entries = [s for s in metrics.get("skipped") or [] if isinstance(s, dict)]
        skipped = [s for s in entries if not s["reason"].startswith("dropped ")]
        if skipped:
            reasons: dict[str, int] = {}
            for s in skipped:
                key = s["reason"].split(" (")[0]
                reasons[key] = reasons.get(key, 0) + 1
            detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
            out.append(f"skipped {len(skipped)} input(s): {detail}")
        dropped = [s for s in entries if s["reason"].startswith("dropped ")]
        if dropped:
            notes = sum(int(s["reason"].split()[1]) for s in dropped)
            out.append(
                f"dropped {notes} note(s) outside the piano range {LOWEST}..{LOWEST + KEYS - 1} "
                f"in {len(dropped)} input(s)"
            )
        return out

    # sampling (generate, and the training callback)

    def _temperature(self, temperature) -> float:
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not temperature > 0
        ):
            raise ParameterError(f"`temperature` must be a number > 0; received {temperature!r}.")
        return float(temperature)


class Polyphonic(MusicTask):
    """Next-step model of polyphonic music: recipe layers -> Dense(K, sigmoid) at every step;
    ``nll_per_step`` and ``frame_accuracy`` as defined in this module's docstring.

    ``pitch_range``: ``[lowest, highest]`` MIDI notes modelled (default the 88 keys);
    ``transpose``: each training sequence moved by a random shift in ``-transpose ..
    transpose`` semitones (kept inside the range) drawn anew every epoch; ``chunk_length`` /
    ``chunk_warmup``: train on windows (see the module docstring); ``bucket``: batches of
    similar length, each padded to its own longest (default false: one shape for the run);
    ``dropout`` before the output layer; ``weight_noise``: Gaussian noise of that standard deviation added to every
    weight for each training step (Graves 2011; Chung et al. 2014 used 0.075), the gradient
    taken at the noisy weights and applied to the clean ones; ``threshold`` of
    ``frame_accuracy``; ``sample_every`` epochs a generated
    sample of ``sample_steps`` steps goes to TensorBoard (audio and a piano-roll image).

    ``output``: ``independent`` (default: the keys independent given the past, or a mixture
    with ``components``) or ``nade``: RNN-NADE (``seqkit.music.nade``), the keys of a step
    modelled jointly, low to high, each given the keys below it, by a NADE of ``nade_units``
    hidden units (default 150, as Boulanger-Lewandowski et al. 2012's RNN-NADE) whose biases
    are dense maps of the recurrent state. Its model takes the roll itself as input (not the
    roll shifted by a step; the NADE layer shifts the state) and outputs each key's
    conditional probability given the true lower keys, so loss, ``nll_per_step`` and
    ``evaluate`` are the Bernoulli ones unchanged; ``frame_accuracy`` thresholds those
    conditionals. With ``chunk_length`` the first step of a training window is predicted from
    a zero state (use ``chunk_warmup``); validation and test use whole sequences.

    ``components``: 1 (default) is the benchmark model above, the keys independent given the
    past. ``components: M > 1`` makes each step's distribution a mixture of M such
    independent-key distributions, ``P(v_t) = sum_m w_m prod_k p_mk^v (1 - p_mk)^(1 - v)``
    (one Dense layer gives the M weights and the M x K key probabilities), which can say that
    notes come together in chords; ``nll_per_step`` is then ``-ln P(v_t)`` with the same
    averaging, and ``frame_accuracy`` uses ``P(key on) = sum_m w_m p_mk``. The model's
    output is then the head's raw values (``M`` weight logits, then ``M x K`` key logits).
    """

    def __init__(
        self,
        pitch_range: list[int] | None = None,
        transpose: int = 0,
        chunk_length: int | None = None,
        chunk_warmup: int = 0,
        dropout: float = 0.0,
        threshold: float = 0.5,
        components: int = 1,
        weight_noise: float = 0.0,
        sample_every: int = 10,
        sample_steps: int = 32,
        output: str = "independent",
        nade_units: int = 150,
        bucket: bool = False,
    ):
        self.components = positive_int("components", components)
        self.kind = "mixture" if self.components > 1 else "bernoulli"
        if output not in OUTPUTS:
            raise ParameterError(
                f"`output` must be one of {', '.join(OUTPUTS)}; received {output!r}."
            )
        if output == "nade" and self.components > 1:
            raise ParameterError(
                "`output: nade` models the keys jointly by itself; remove `components` "
                f"(received {components!r}) or use `output: independent`."
            )
        self.output = output
        self.nade_units = positive_int("nade_units", nade_units)
        if pitch_range is None:
            self.lowest, self.keys = LOWEST, KEYS
        else:
            ok = (
                isinstance(pitch_range, (list, tuple))
                and len(pitch_range) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in pitch_range)
                and LOWEST <= pitch_range[0] < pitch_range[1] <= LOWEST + KEYS - 1
            )
            if not ok:
                raise ParameterError(
                    f"`pitch_range` must be [lowest, highest] MIDI notes within {LOWEST}..{LOWEST + KEYS - 1}, "
                    f"lowest below highest; received {pitch_range!r}."
                )
            self.lowest, self.keys = pitch_range[0], pitch_range[1] - pitch_range[0] + 1
        if (
            not isinstance(threshold, (int, float))
            or isinstance(threshold, bool)
            or not 0 < threshold < 1
        ):
            raise ParameterError(f"`threshold` must be in (0, 1); received {threshold!r}.")
        self.threshold = float(threshold)
        self._common(transpose, chunk_length, chunk_warmup, dropout, sample_every, sample_steps,
                     weight_noise, bucket)  # fmt: skip

    def dummy_info(self) -> dict:
        return {
            "keys": self.keys,
            "lowest_note": self.lowest,
            "inputs": self.keys,
            "components": self.components,
        } | ({"output": "nade", "nade_units": self.nade_units} if self.nade else {})

    @property
    def nade(self) -> bool:
        return self.output == "nade"

    @property
    def head_takes_inputs(self) -> bool:
        """The NADE head reads the model's input (the roll) for the true lower keys."""
        return self.nade

    def encode(self, target):
        y = np.asarray(target, dtype=np.float32)
        if self.nade:  # the model reads the roll itself; the NADE layer shifts the state
            return y, y
        return shifted_inputs(y), y

    def _augment(self, info):
        limit = self.transpose

        def move(rng, roll):
            down, up = transpose_limits(roll)
            k = int(rng.integers(max(-limit, down), min(limit, up) + 1))
            if k == 0:
                return roll
            out = np.zeros_like(roll)
            if k > 0:
                out[:, k:] = roll[:, :-k]
            else:
                out[:, :k] = roll[:, -k:]
            return out

        return move

    def load_data(self, parts: Parts, settings: Settings, progress=None) -> TaskData:
        music = self._load(parts, settings)
        lo = self.lowest - LOWEST
        targets: dict[str, list] = {s: [] for s in SPLITS}
        outside = {s: 0 for s in SPLITS}
        for p in music.pieces:
            roll = p.roll
            outside[p.split] += int(roll[:, :lo].sum() + roll[:, lo + self.keys :].sum())
            targets[p.split].append((p.name, roll[:, lo : lo + self.keys].astype(np.float32)))
        for split, n in outside.items():
            if n:
                log.warning(
                    "%d active key-steps of the %s split lie outside pitch_range %d..%d and "
                    "were dropped.", n, split, self.lowest, self.lowest + self.keys - 1
                )  # fmt: skip
        info = self.dummy_info() | {"keysteps_outside_pitch_range": outside}
        return self._task_data(music, targets, info, settings)

    def head(self, x, info: dict, inputs=None):
        if self.dropout:
            x = keras.layers.Dropout(self.dropout, name="head_dropout")(x)
        if self.nade:
            return NadeKeys(info["keys"], self.nade_units, name=LAYER_NAME)([x, inputs])
        m = int(info.get("components", 1))
        if m > 1:
            return keras.layers.Dense(m * (info["keys"] + 1), name="mixture")(x)
        return keras.layers.Dense(info["keys"], activation="sigmoid", name="keys")(x)

    def compile_args(self) -> dict:
        m = self.components
        return {
            "loss": StepNLLLoss(kind=self.kind, components=m),
            "weighted_metrics": [NLLPerStep(self.kind, m), FrameAccuracy(self.threshold, m)],
        }

    def step_nll(self, outputs, target) -> np.ndarray:
        """NLL of each step from the model's outputs (probabilities, or mixture values)."""
        if self.components > 1:
            return mixture_step_nll(outputs, target, self.components)
        return step_nll(outputs, target)

    def key_probabilities(self, outputs) -> np.ndarray:
        """``P(key on)`` per step from the model's outputs."""
        if self.components > 1:
            return mixture_marginals(outputs, self.components)
        return np.asarray(outputs)

    def evaluate(self, model, data: TaskData, split: str, batch_size=64) -> dict:
        s = data.splits[split]
        if self.nade:  # the NADE holds (steps x keys x nade_units) values per sequence
            batch_size = min(batch_size, 8)
        outputs = predict_sequences(model, s.x, batch_size)
        per = [self.step_nll(o, v) for o, v in zip(outputs, s.y)]
        probs = [self.key_probabilities(o) for o in outputs]
        steps = sum(len(x) for x in per)
        after_first = sum(len(x) - 1 for x in per)
        return {
            "nll_per_step": float(sum(x.sum() for x in per) / steps),
            "nll_per_step_after_first": float(sum(x[1:].sum() for x in per) / after_first)
            if after_first
            else None,
            "frame_accuracy": frame_accuracy(probs, s.y, self.threshold),
            "threshold": self.threshold,
            "sequences": len(per),
            "steps": int(steps),
            "keys": int(data.info["keys"]),
            "components": self.components,
            "output": self.output,
        }

    def sample(self, model, info, steps, num=1, temperature=1.0, seed=0, primer=None):
        """``num`` rolls ``(len(primer) + steps, K)``: the primer, then ``steps`` sampled steps
        (each key on with probability ``sigmoid(logit(p) / temperature)``; with a mixture, a
        component drawn first with weights ``w ** (1 / temperature)``; with ``output: nade``
        key by key low to high, each given the keys drawn below it), seeded."""
        t = self._temperature(temperature)
        if self.nade:
            return self._sample_nade(model, info, steps, num, t, seed, primer)
        rng = np.random.default_rng(seed)
        k = int(info["keys"])
        primer = np.zeros((0, k), np.float32) if primer is None else np.asarray(primer, np.float32)
        total = len(primer) + int(steps)
        length = _round_up(total, 16)
        seq = np.zeros((num, length, k), np.float32)
        seq[:, : len(primer)] = primer
        for i in range(len(primer), total):
            x = np.zeros_like(seq)
            x[:, 1:] = seq[:, :-1]
            out = np.asarray(model.predict_on_batch(x))[:, i].astype(np.float64)
            if self.components > 1:
                log_w, logits = mixture_parts(out, self.components)
                w = np.exp((log_w - log_w.max(axis=-1, keepdims=True)) / t)
                w /= w.sum(axis=-1, keepdims=True)
                pick = [rng.choice(self.components, p=w[j]) for j in range(num)]
                logit = logits[np.arange(num), pick]
            else:
                p = np.clip(out, EPSILON, 1 - EPSILON)
                logit = np.log(p) - np.log1p(-p)
            p = 1.0 / (1.0 + np.exp(-logit / t))
            seq[:, i] = rng.random((num, k)) < p
        return [seq[j, :total] > 0 for j in range(num)]

    def _sample_nade(self, model, info, steps, num, t, seed, primer):
        rng = np.random.default_rng(seed)
        k = int(info["keys"])
        primer = np.zeros((0, k), np.float32) if primer is None else np.asarray(primer, np.float32)
        total = len(primer) + int(steps)
        seq = np.zeros((num, _round_up(total, 16), k), np.float32)
        seq[:, : len(primer)] = primer
        weights = nade_weights(model.get_layer(LAYER_NAME))
        states = state_model(model)
        for i in range(len(primer), total):
            if i == 0:
                state = np.zeros((num, int(weights["state_to_keys"].shape[0])))
            else:  # the state after step i - 1 (the model's input holds the roll itself)
                state = np.asarray(states.predict_on_batch(seq))[:, i - 1]
            seq[:, i] = sample_nade(weights, state, rng, t)
        return [seq[j, :total] > 0 for j in range(num)]

    def to_notes(self, sample, info):
        """Notes ``(pitch, start, end)`` of a sampled roll (a run of steps is one note)."""

        return roll_to_notes(sample, lowest=int(info["lowest_note"]))

    def primer_from_notes(self, notes, info):

        roll, _, outside = notes_to_roll(
            notes, lowest=int(info["lowest_note"]), keys=int(info["keys"])
        )
        return roll.astype(np.float32), outside


# -- samples in TensorBoard ----------------------------------------------------------------------


