"""The ``melody`` task: MelodyRNN-style events (hold, rest, note on) predicted step by step,
a softmax over them; definitions in ``seqkit.music.task``'s docstring.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from ..data import SPLITS
from ..errors import ParameterError
from ..tasks import Parts, Settings, TaskData
from .batches import _round_up, predict_sequences
from .losses import NLLPerStep
from .metrics import event_nll
from .rolls import FIRST_NOTE_EVENT, events_to_notes, melody_events, notes_to_roll
from .task import MusicTask

log = logging.getLogger("seqkit")

class Melody(MusicTask):
    """Monophonic melody model, Magenta MelodyRNN-style: one event per step (hold, rest, or
    note on for each pitch of ``min_note .. max_note``), recipe layers -> Dense(events,
    softmax). Melodies are the top line of the source's rolls; notes outside the range move
    by octaves into it (counted). ``transpose``, ``chunk_length``, ``chunk_warmup``,
    ``dropout``, ``weight_noise``, ``sample_every``, ``sample_steps``, ``bucket`` as for
    ``polyphonic``."""

    kind = "categorical"

    def __init__(
        self,
        min_note: int = 48,
        max_note: int = 84,
        transpose: int = 0,
        chunk_length: int | None = None,
        chunk_warmup: int = 0,
        dropout: float = 0.0,
        weight_noise: float = 0.0,
        sample_every: int = 10,
        sample_steps: int = 64,
        bucket: bool = False,
    ):
        for name, v in (("min_note", min_note), ("max_note", max_note)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 127:
                raise ParameterError(f"`{name}` must be a MIDI note 0..127; received {v!r}.")
        if min_note >= max_note:
            raise ParameterError(f"`min_note` ({min_note}) must be below `max_note` ({max_note}).")
        self.min_note, self.max_note = min_note, max_note
        self.classes = FIRST_NOTE_EVENT + max_note - min_note + 1
        self._common(transpose, chunk_length, chunk_warmup, dropout, sample_every, sample_steps,
                     weight_noise, bucket)  # fmt: skip

    def dummy_info(self) -> dict:
        return {
            "min_note": self.min_note,
            "max_note": self.max_note,
            "classes": self.classes,
            "inputs": self.classes,
        }

    def encode(self, events):
        events = np.asarray(events, dtype=np.int32)
        x = np.zeros((len(events), self.classes), np.float32)
        if len(events) > 1:
            x[np.arange(1, len(events)), events[:-1]] = 1.0
        return x, events

    def _augment(self, info):
        limit, lo, hi = self.transpose, self.min_note, self.max_note

        def move(rng, events):
            notes = events[events >= FIRST_NOTE_EVENT] - FIRST_NOTE_EVENT + lo
            if notes.size == 0:
                return events
            down, up = lo - int(notes.min()), hi - int(notes.max())
            k = int(rng.integers(max(-limit, down), min(limit, up) + 1))
            out = events.copy()
            out[events >= FIRST_NOTE_EVENT] += k
            return out

        return move

    def load_data(self, parts: Parts, settings: Settings, progress=None) -> TaskData:
        music = self._load(parts, settings)
        targets: dict[str, list] = {s: [] for s in SPLITS}
        folded = 0
        for p in music.pieces:
            events, n = melody_events(p.roll, p.onsets, self.min_note, self.max_note)
            folded += n
            if (events >= FIRST_NOTE_EVENT).any():
                targets[p.split].append((p.name, events))
        if folded:
            log.warning(
                "%d melody note(s) outside %d..%d were moved by octaves into the range.",
                folded, self.min_note, self.max_note,
            )  # fmt: skip
        info = self.dummy_info() | {"notes_folded": folded}
        return self._task_data(music, targets, info, settings)

    def head(self, x, info: dict):
        if self.dropout:
            x = keras.layers.Dropout(self.dropout, name="head_dropout")(x)
        return keras.layers.Dense(info["classes"], activation="softmax", name="events")(x)

    def _metrics(self):
        return [NLLPerStep("categorical"), keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def evaluate(self, model, data: TaskData, split: str, batch_size=64) -> dict:
        s = data.splits[split]
        probs = predict_sequences(model, s.x, batch_size)
        per = [event_nll(p, e) for p, e in zip(probs, s.y)]
        steps = sum(len(x) for x in per)
        right = sum(int((p.argmax(-1) == e).sum()) for p, e in zip(probs, s.y))
        ons = [(p.argmax(-1), e) for p, e in zip(probs, s.y)]
        on_steps = sum(int((e >= FIRST_NOTE_EVENT).sum()) for _, e in ons)
        on_right = sum(int(((a == e) & (e >= FIRST_NOTE_EVENT)).sum()) for a, e in ons)
        return {
            "nll_per_step": float(sum(x.sum() for x in per) / steps),
            "accuracy": right / steps,
            "note_on_accuracy": on_right / on_steps if on_steps else None,
            "sequences": len(per),
            "steps": int(steps),
            "classes": int(data.info["classes"]),
        }

    def sample(self, model, info, steps, num=1, temperature=1.0, seed=0, primer=None):
        """``num`` event sequences: the primer's events, then ``steps`` sampled events
        (softmax probabilities raised to ``1 / temperature``, renormalised), seeded."""
        t = self._temperature(temperature)
        rng = np.random.default_rng(seed)
        c = int(info["classes"])
        primer = np.zeros(0, np.int32) if primer is None else np.asarray(primer, np.int32)
        total = len(primer) + int(steps)
        length = _round_up(total, 16)
        events = np.zeros((num, total), np.int32)
        events[:, : len(primer)] = primer
        x = np.zeros((num, length, c), np.float32)
        for i in range(1, len(primer) + 1):
            if i < length:
                x[:, i, primer[i - 1]] = 1.0
        for i in range(len(primer), total):
            p = np.asarray(model.predict_on_batch(x))[:, i].astype(np.float64)
            logp = np.log(np.clip(p, 1e-12, 1.0)) / t
            q = np.exp(logp - logp.max(axis=1, keepdims=True))
            q /= q.sum(axis=1, keepdims=True)
            for j in range(num):
                events[j, i] = rng.choice(c, p=q[j])
            if i + 1 < length:
                x[np.arange(num), i + 1, events[:, i]] = 1.0
        return [events[j] for j in range(num)]

    def to_notes(self, sample, info):
        return events_to_notes(sample, int(info["min_note"]))

    def primer_from_notes(self, notes, info):

        roll, onsets, _ = notes_to_roll(notes)
        events, folded = melody_events(roll, onsets, int(info["min_note"]), int(info["max_note"]))
        return events, folded
