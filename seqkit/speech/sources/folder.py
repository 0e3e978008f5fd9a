"""``folder``: audio in one sub-folder per label (``root/yes/a1b2_nohash_0.wav``).

Folders whose name starts with ``_`` or ``.`` (``_background_noise_``) are not labels; the split
is the hash rule of ``seqkit.data.which_set``.
"""

from __future__ import annotations

from pathlib import Path

from ...data import AUDIO_EXTENSIONS, Example, percent, which_set
from ...errors import DataError, ParameterError


class FolderSource:
    """Audio in one sub-folder per label; split by the stable hash rule (module docstring)."""

    def __init__(
        self,
        root: str,
        labels: list[str] | None = None,
        validation_percent: float = 10.0,
        test_percent: float = 10.0,
        extensions: list[str] | None = None,
    ):
        self.root = Path(root).expanduser()
        self.labels = list(labels) if labels is not None else None
        self.validation_percent = percent("validation_percent", validation_percent)
        self.test_percent = percent("test_percent", test_percent)
        if self.validation_percent + self.test_percent >= 100:
            raise ParameterError(
                "`validation_percent` + `test_percent` must be < 100; received "
                f"{self.validation_percent:g} + {self.test_percent:g}."
            )
        self.extensions = tuple(
            e.lower() if e.startswith(".") else f".{e.lower()}"
            for e in (extensions or AUDIO_EXTENSIONS)
        )

    def prepare(self) -> None:
        """Make the data available (nothing to do for a plain folder)."""

    def label_names(self) -> list[str]:
        if self.root.exists() and not self.root.is_dir():
            raise DataError(
                f"Data folder '{self.root}' is a file, not a folder (data.source.root)."
            )
        if not self.root.is_dir():
            raise DataError(
                f"Data folder '{self.root}' does not exist (data.source.root); "
                "check the path or create it with one sub-folder per label."
            )
        found = sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(("_", ".")) and not (p / "run.json").is_file()
        )
        if self.labels is None:
            if len(found) < 2:
                raise DataError(
                    f"Data folder '{self.root}' needs at least two label sub-folders; "
                    f"found {len(found)} ({', '.join(found) or 'none'})."
                )
            return found
        missing = [name for name in self.labels if name not in found]
        if missing:
            raise DataError(
                f"Label folder(s) {', '.join(missing)} not found in '{self.root}' "
                f"(data.source.labels); found: {', '.join(found) or 'none'}."
            )
        return list(self.labels)

    def examples(self) -> list[Example]:
        self.prepare()
        out = []
        for label in self.label_names():
            folder = self.root / label
            files = sorted(
                p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in self.extensions
            )
            if not files:
                raise DataError(
                    f"Class folder '{folder}' has no audio files ({', '.join(self.extensions)}); "
                    "add recordings or remove the folder."
                )
            for path in files:
                split = which_set(path.name, self.validation_percent, self.test_percent)
                out.append(Example(str(path), label, split))
        return out
