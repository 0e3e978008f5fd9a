"""``manifest``: a CSV file with the header ``path,label,split`` (and optionally ``speaker``);
paths are relative to the CSV's folder.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from ...data import SPLITS, Example
from ...errors import DataError, ParameterError, did_you_mean
from .common import _check_labels, _examples_line, _ScannedSource, _select_labels

log = logging.getLogger("seqkit")

MANIFEST_COLUMNS = ("path", "label", "split")
SPEAKER_COLUMN = "speaker"  # optional: who said each clip (per-speaker reports, crossval folds)
# Rows read from one manifest, counted while reading (Speech Commands v2 has 105,829 clips).
MAX_MANIFEST_ROWS = 1_000_000


class Manifest(_ScannedSource):
    """Examples listed in a CSV file with the header ``path,label,split`` (other columns are
    ignored). Paths are relative to the CSV file's folder; ``split`` is ``train``,
    ``validation`` or ``test``. An optional ``speaker`` column names who said each clip
    (``Example.speaker``: per-speaker accuracy, ``seqkit crossval --by speaker``); an empty cell
    leaves that clip's speaker unknown (or Speech Commands' ``<speaker>_nohash_`` file name
    rule gives it). Malformed rows are reported together with their line numbers;
    rows naming a file that does not exist are skipped with one warning. ``labels`` selects
    and orders the labels (default: sorted).
    """

    MAX_PROBLEMS = 10

    def __init__(self, path: str, labels: list[str] | None = None):
        if not isinstance(path, str) or not path:
            raise ParameterError(f"`path` must be the CSV file's path; received {path!r}.")
        self.path = Path(path).expanduser()
        self.labels = _check_labels(labels)

    @property
    def data_root(self) -> Path:
        return self.path.parent

    def _rows(self):
        if not self.path.is_file():
            what = "is a folder, not a CSV file" if self.path.is_dir() else "does not exist"
            raise DataError(f"Manifest '{self.path}' {what} (data.source.path).")
        try:
            with self.path.open(encoding="utf-8-sig", newline="") as fh:
                return self._read_rows(csv.reader(fh))
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(
                f"Manifest '{self.path}' cannot be read as UTF-8 text ({exc})."
            ) from exc

    def _read_rows(self, reader):
        """The checked rows, read as the file is (at most ``MAX_MANIFEST_ROWS``)."""
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise DataError(f"{self.path}:1: not a CSV header ({exc}).") from exc
        header = [h.strip().lower() for h in header or []]
        missing = [c for c in MANIFEST_COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"{self.path}:1: the header must name the columns path,label,split; "
                f"missing {', '.join(missing)} (header: {','.join(header) or 'empty'})."
            )
        index = {c: header.index(c) for c in MANIFEST_COLUMNS}
        speaker_at = header.index(SPEAKER_COLUMN) if SPEAKER_COLUMN in header else None
        rows, problems, n = [], [], 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                row = exc
            line = reader.line_num
            if isinstance(row, list) and not any(cell.strip() for cell in row):
                continue
            n += 1  # rows, good or bad, blank lines aside
            if n > MAX_MANIFEST_ROWS:
                raise DataError(
                    f"Manifest '{self.path}' has more than {MAX_MANIFEST_ROWS:,} rows "
                    "(MAX_MANIFEST_ROWS); split it, or check that it is the right file."
                )
            if isinstance(row, csv.Error):
                problems.append(f"line {line}: {row}")
                continue
            if len(row) != len(header):
                problems.append(f"line {line}: {len(row)} fields, the header has {len(header)}")
                continue
            path, label, split = (row[index[c]].strip() for c in MANIFEST_COLUMNS)
            if not path:
                problems.append(f"line {line}: empty path")
            elif not label:
                problems.append(f"line {line}: empty label")
            elif split not in SPLITS:
                problems.append(
                    f"line {line}: split must be train, validation or test; received "
                    f"{split!r}.{did_you_mean(split, SPLITS)}"
                )
            else:
                speaker = row[speaker_at].strip() if speaker_at is not None else ""
                rows.append((line, path, label, split, speaker or None))
        if problems:
            more = len(problems) - self.MAX_PROBLEMS
            shown = problems[: self.MAX_PROBLEMS] + ([f"... and {more} more"] if more > 0 else [])
            raise DataError(
                f"Manifest '{self.path}' has {len(problems)} bad row(s); fix them:\n  "
                + "\n  ".join(shown)
            )
        if not rows:
            raise DataError(f"Manifest '{self.path}' lists no files (only a header).")
        return rows

    def _read(self):
        found: dict[str, list[Example]] = {}
        absent = []
        for line, rel, label, split, speaker in self._rows():
            p = self.data_root / rel
            if not p.is_file():
                absent.append(f"line {line}: {rel}")
                continue
            found.setdefault(label, []).append(Example(str(p), label, split, speaker=speaker))
        if absent:
            log.warning(
                "%s names %d file(s) that do not exist (%s); they are skipped.",
                self.path,
                len(absent),
                _examples_line(absent),
            )
        labels = _select_labels(found, self.labels, f"manifest '{self.path}'")
        examples = [ex for name in labels for ex in found[name]]
        return labels, examples
