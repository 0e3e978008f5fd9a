"""Hostile recipes: property-based fuzzing of the recipe loader, and the loader's limits.

The property: whatever a recipe file or a ``--set`` holds, ``load_recipe`` ends in a valid
``Recipe`` (which writes itself back as YAML that validates again) or in a ``RecipeError`` that
names the file and, for each problem, a dotted path or a line -- never another exception, never
unbounded time or memory. Hypothesis runs derandomized here (the same examples on every run);
``SEQKIT_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_recipe.py`` runs more, with fresh random ones.
"""

from __future__ import annotations

import copy
import os
import re
import resource
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqkit import safe_yaml
from seqkit.errors import RecipeError
from seqkit.recipe import Recipe, load_recipe, read_yaml, validate_dict

_EXAMPLES = os.environ.get("SEQKIT_FUZZ_EXAMPLES")


def fuzz(examples: int):
    """Hypothesis settings: ``examples`` cases (more with SEQKIT_FUZZ_EXAMPLES), no deadline."""
    return settings(
        max_examples=int(_EXAMPLES) if _EXAMPLES else examples,
        deadline=None,
        database=None,
        derandomize=not _EXAMPLES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


VALID = {
    "name": "fuzz",
    "seed": 3,
    "data": {"source": {"type": "folder", "root": "data/words", "validation_percent": 10}},
    "features": [
        {"type": "load", "sample_rate": 16000},
        {"type": "fix_length", "seconds": 1.0},
        {"type": "melspectrogram", "n_fft": 512, "hop_length": 160, "n_mels": 40},
        {"type": "power_to_db"},
        {"type": "mfcc", "n_mfcc": 13},
    ],
    "model": {
        "layers": [
            {"type": "gru", "units": 16, "return_sequences": True},
            {"type": "gru", "units": 8},
        ]
    },
    "task": {"type": "kws"},
    "train": {"epochs": 2, "batch_size": 8, "optimizer": {"type": "adam", "learning_rate": 0.01}},
}

# Names the fuzzer puts in as keys and --set paths, so that it reaches past "unknown key".
KEYS = sorted(
    {
        *VALID,
        *VALID["train"],
        *VALID["train"]["optimizer"],
        "clipnorm", "early_stopping_patience", "reduce_lr_patience", "normalize", "description",
        "type", "units", "return_sequences", "return_state", "dropout", "recurrent_dropout",
        "bidirectional", "name", "dtype", "trainable", "activation", "reset_after", "go_backwards",
        "sample_rate", "seconds", "n_fft", "hop_length", "n_mels", "n_mfcc", "order", "fmax",
        "root", "validation_percent", "test_percent", "source", "layers", "gru", "lstm", "rnn",
        "dense", "load", "mfcc", "kws", "folder", "synthetic_tones", "<<",
    }
)  # fmt: skip
SET_PATHS = [
    "name", "seed", "description", "train.epochs", "train.batch_size",
    "train.optimizer.type", "train.optimizer.learning_rate", "train.optimizer.clipnorm",
    "model.normalize", "model.layers[0].units", "model.layers.1.type", "model.layers[0]",
    "model.layers[-1].dropout", "model.layers[7].units", "features[2].n_fft", "features.0",
    "features[4].n_mfcc", "data.source.root", "data.source", "task.type", "task", "model",
    "train", "train.optimizer", "features", "[0]", "a..b", "", ".", "train.epochs.x",
]  # fmt: skip

# Where a problem without a dotted path must say where it is.
LOCATED = re.compile(
    r"line \d+, column \d+|recipe file not found|cannot be read|a recipe must be a YAML mapping|too large: \d"
)

huge_ints = st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**40, 10**99, -(10**99)])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    huge_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "yes", "no", "on", "null", "~", "1e400", "-.inf", "2024-01-01", "="]),
    st.sampled_from(KEYS),
)
keys = st.one_of(
    st.sampled_from(KEYS), st.text(max_size=8), st.integers(), st.none(), st.booleans()
)


def _containers(inner):
    return st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4))


def values(max_leaves=12):
    return st.recursive(scalars, _containers, max_leaves=max_leaves)


def _locations(doc):
    """Every (container, key) pair inside ``doc`` that can be replaced or deleted."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((doc, k))
            out += _locations(v)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((doc, i))
            out += _locations(v)
    return out


@st.composite
def mutated_recipes(draw, max_mutations=3):
    """The valid recipe with 1-3 values replaced, deleted, or keys added, anywhere in it."""
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, max_mutations))):
        where = _locations(doc)
        container, key = draw(st.sampled_from(where)) if where else (doc, "name")
        action = draw(st.sampled_from(["replace", "replace", "delete", "add", "wrap"]))
        if action == "replace":
            container[key] = draw(values())
        elif action == "delete":
            del container[key]
        elif action == "wrap":  # a mapping where a list is expected and vice versa
            container[key] = [container[key]] if draw(st.booleans()) else {"type": container[key]}
        else:
            target = container[key] if isinstance(container[key], dict) else doc
            target[draw(keys)] = draw(values(6))
    return doc


def dump(doc, unicode=True) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=unicode)


# Text mutations reach what dumping a Python object never writes: anchors, aliases, tags,
# flow/block mixes, broken quoting, tabs, BOMs, control characters.
FRAGMENTS = [
    "&a ", "*a", "&b [*a, *a]", "<<: *a", "!!str ", "!!int ", "!!float ", "!!bool ", "!!null ",
    "!!python/object/apply:os.getcwd []", "!!python/name:os.system", "!!binary aGk=", "!local ",
    "!!set {a}", "!!omap [a: 1]", "!!timestamp 2001-12-14", "{", "}", "[", "]", ": ", "- ", "? ",
    ",", "'", '"', "|\n  ", ">-\n  ", "\t", "\n", "\n  ", "#", "%YAML 1.1\n---\n", "---\n", "...\n",
    "\ufeff", "\x00", "\x85", "\u2028", "\\ud800", '"\\ud800"', "0x" + "f" * 120, "9" * 4400,
    "1:30:00", "0o17", ".nan", "é", "🎵", "=",
]  # fmt: skip


@st.composite
def mangled_text(draw):
    text = dump(draw(st.one_of(st.just(VALID), mutated_recipes(1))), unicode=draw(st.booleans()))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        piece = draw(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)))
        cut = draw(st.integers(0, 3))
        text = text[:pos] + piece + text[pos + cut :]
    return text


YAMLISH = string.ascii_letters[:6] + string.digits[:4] + "{}[]:,-&*!|>'\"#%@` \n\t.<=~?"
set_values = st.one_of(
    st.text(alphabet=YAMLISH, max_size=20),
    st.sampled_from(FRAGMENTS),
    values(6).map(
        lambda v: yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()
    ),
)
overrides = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(SET_PATHS), set_values).map("=".join),
        st.text(alphabet=YAMLISH + "=", max_size=15),
    ),
    max_size=3,
)


# -- the property ----------------------------------------------------------------------------------


def outcome(path, sets=None, build_layers=False):
    """``load_recipe`` ends in a Recipe that round-trips, or a well-formed RecipeError."""
    try:
        recipe = load_recipe(path, sets, build_layers=build_layers)
    except RecipeError as err:
        check_error(err, str(path))
        return err
    assert isinstance(recipe, Recipe)
    again = validate_dict(yaml.safe_load(recipe.to_yaml()), build_layers=False)
    assert again.to_dict() == recipe.to_dict() or _has_nan(recipe.to_dict())
    return recipe


def check_error(err: RecipeError, file: str | None) -> None:
    assert err.problems, "a RecipeError without problems"
    assert err.file == file
    text = str(err)
    text.encode("utf-8")  # printable on a UTF-8 terminal: no lone surrogates
    for line in text.splitlines() if file else []:
        assert line.startswith(f"{file}: ") or not line.strip() or line.startswith(" ")
    for path, message in err.problems:
        assert message.strip(), err.problems
        assert path or LOCATED.search(message), f"problem without a path or a line: {message!r}"


def _has_nan(obj) -> bool:
    if isinstance(obj, float):
        return obj != obj
    if isinstance(obj, dict):
        return any(_has_nan(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_nan(v) for v in obj)
    return False


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    import keras  # noqa: F401 -- imported once here, not inside the first example

    validate_dict(copy.deepcopy(VALID))  # the valid recipe is valid, and every module is imported
    return tmp_path_factory.mktemp("fuzz")


def write(folder, text: str, name="recipe.yaml"):
    path = folder / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def test_the_valid_recipe_is_valid(folder):
    recipe = outcome(write(folder, dump(VALID)))
    assert isinstance(recipe, Recipe)
    assert recipe.model.layers[0].params == {"units": 16, "return_sequences": True}
    assert recipe.train.optimizer.learning_rate == 0.01


@fuzz(300)
@given(doc=values(20))
def test_any_document_validates_or_is_a_recipe_error(doc):
    try:
        validate_dict(doc, file="doc.yaml", build_layers=False)
    except RecipeError as err:
        check_error(err, "doc.yaml")


@fuzz(250)
@given(doc=mutated_recipes())
def test_mutated_recipes_load_or_fail_with_a_path(folder, doc):
    outcome(write(folder, dump(doc)))


@fuzz(200)
@given(text=mangled_text())
def test_mangled_yaml_text_loads_or_fails_with_a_line(folder, text):
    outcome(write(folder, text))


@fuzz(150)
@given(sets=overrides)
def test_random_overrides_apply_or_fail_with_a_path(folder, sets):
    outcome(write(folder, dump(VALID), "set.yaml"), sets)


@fuzz(40)
@given(doc=mutated_recipes(2))
def test_mutated_recipes_that_build_their_layers(folder, doc):
    outcome(write(folder, dump(doc), "build.yaml"), build_layers=True)


@fuzz(100)
@given(text=st.text(alphabet=YAMLISH, max_size=60))
def test_short_yamlish_text(folder, text):
    outcome(write(folder, text, "short.yaml"))


# -- examples the fuzzer found, kept as plain tests ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("seed: !!int abc\n", r"line 1, column 7: 'abc' cannot be read as !!int"),
        ("seed: !!bool maybe\n", r"'maybe' cannot be read as !!bool"),
        ("seed: !!int ''\n", r"'' cannot be read as !!int"),
        ("seed: " + "9" * 5000 + "\n", r"too large: an integer written with 5000 characters"),
        ("seed: 0x" + "f" * 200 + "\n", r"too large: an integer written with 202 characters"),
        ('name: "\\ud800"\n', r"'\\ud800' is half of a UTF-16 surrogate pair"),
        ("when: !!timestamp 2024-01-01\n", r"tag '!!timestamp'"),
        ("blob: !!binary aGk=\n", r"tag '!!binary'"),
        ("labels: !!set {a, b}\n", r"tag '!!set'"),
        ("x: !mine 1\n", r"tag '!mine'"),
    ],
)
def test_values_the_loader_refuses_with_the_line(folder, text, expected):
    path = write(folder, text, "refused.yaml")
    with pytest.raises(RecipeError, match=expected) as err:
        read_yaml(path)
    assert err.value.file == str(path) and re.search(r"line \d+, column \d+", str(err.value))


def test_keys_that_need_quoting_are_quoted_in_paths():
    doc = copy.deepcopy(VALID)
    doc[""] = 1
    doc["a\rb"] = 2
    doc["features"][0]["x.y"] = 3
    with pytest.raises(RecipeError) as err:
        validate_dict(doc, file="f.yaml", build_layers=False)
    assert [p for p, _ in err.value.problems] == ["['']", "['a\\rb']", "features[0]['x.y']"]
    assert len(str(err.value).splitlines()) == 3  # one line per problem, each "f.yaml: ..."


def test_unknown_names_with_a_newline_stay_on_one_line():
    doc = copy.deepcopy(VALID)
    doc["task"]["type"] = ",\n"
    doc["train"]["optimizer"]["type"] = "a\nb"
    with pytest.raises(RecipeError) as err:
        validate_dict(doc, file="f.yaml", build_layers=False)
    problems = dict(err.value.problems)
    assert problems["task.type"].startswith("Unknown task ',\\n'. Available tasks: kws")
    assert problems["train.optimizer.type"].startswith("unknown optimizer 'a\\nb'. Available:")
    assert len(str(err.value).splitlines()) == 2


def test_an_override_key_with_a_newline_stays_on_one_line(folder):
    path = write(folder, dump(VALID), "newline.yaml")
    with pytest.raises(RecipeError) as err:
        load_recipe(path, ["0\n0=1"])
    assert err.value.problems == [("--set '0\\n0'", "'['0\\n0']' does not exist in the recipe.")]
    assert len(str(err.value).splitlines()) == 1


def test_dates_and_equals_signs_stay_strings(folder):
    path = write(folder, "description: 2024-01-01\nname: =\n", "dates.yaml")
    assert read_yaml(path) == {"description": "2024-01-01", "name": "="}


def test_merge_keys_work_and_may_override(folder):
    text = "base: &b {type: gru, units: 8}\nlayers: [{<<: *b, units: 16}, *b]\n"
    assert read_yaml(write(folder, text, "merge.yaml"))["layers"] == [
        {"type": "gru", "units": 16},
        {"type": "gru", "units": 8},
    ]


def test_a_duplicate_key_is_still_refused(folder):
    with pytest.raises(RecipeError, match=r"line 2, column 1: key 'seed' appears twice"):
        read_yaml(write(folder, "seed: 1\nseed: 2\n", "dup.yaml"))


def test_override_tags_and_bombs_are_refused_not_taken_as_text(folder, tmp_path):
    marker = tmp_path / "set-ran"
    path = write(folder, dump(VALID), "setbomb.yaml")
    with pytest.raises(RecipeError) as err:
        load_recipe(path, [f"description=!!python/object/apply:os.system ['touch {marker}']"])
    assert err.value.path == "--set description"
    assert "tag '!!python/object/apply:os.system'" in str(err.value)
    assert not marker.exists()
    bomb = "[" * 200 + "]" * 200
    with pytest.raises(RecipeError, match=r"--set description: line 1, column 51: too deep"):
        load_recipe(path, [f"description={bomb}"])
    # An ordinary YAML error in a --set value still means "take it as text".
    assert load_recipe(path, ["description=[not closed"]).description == "[not closed"


# -- bombs: bounded time and memory ----------------------------------------------------------------


def billion_laughs(levels=9, width=10) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + f"\ndescription: *a{levels - 1}\n"


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_billion_laughs_is_refused(folder):
    path = write(folder, billion_laughs(), "laughs.yaml")  # 10**9 strings if expanded
    before = _max_rss_mb()
    with pytest.raises(
        RecipeError, match=r"line 5, column 45: too many aliases: expanding them"
    ) as err:
        load_recipe(path)
    assert err.value.file == str(path)
    assert _max_rss_mb() - before < 50  # the peak memory of this process barely moved


def test_a_smaller_alias_tree_is_fine_up_to_the_limit(folder):
    # 4 levels of 10: 11,111 values after expansion -- allowed; 5 levels (111,111) are not.
    assert len(read_yaml(write(folder, billion_laughs(4), "ok.yaml"))["description"]) == 10
    with pytest.raises(RecipeError, match=f"more than {safe_yaml.MAX_VALUES} values"):
        read_yaml(write(folder, billion_laughs(5), "five.yaml"))


def test_a_recursive_alias_is_refused(folder):
    with pytest.raises(
        RecipeError, match=r"line 1, column 21: too many aliases: \*a is used inside"
    ):
        read_yaml(write(folder, "description: &a [1, *a]\n", "loop.yaml"))


@pytest.mark.parametrize(
    "text",
    [
        "description: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v\n",
        "description: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
    ],
    ids=["flow-lists", "block-mappings", "flow-mappings"],
)
def test_deep_nesting_is_refused_not_a_recursion_error(folder, text):
    with pytest.raises(RecipeError, match=r"too deep: lists and mappings nest more than 50 levels"):
        read_yaml(write(folder, text, "deep.yaml"))


def test_deep_nesting_through_aliases_is_refused(folder):
    inner = "[" * 30 + "]" * 30
    text = f"a: &a {inner}\nb: &b {'[' * 15}*a{']' * 15}\ndescription: [[[[[[*b]]]]]]\n"
    with pytest.raises(RecipeError, match=r"line 3, column 20: too deep: .* \(through alias \*b\)"):
        read_yaml(write(folder, text, "deepalias.yaml"))


def test_nesting_a_real_recipe_needs_is_fine(folder):
    doc = {"description": "x"}
    node = doc
    for _ in range(safe_yaml.MAX_DEPTH - 2):
        node["n"] = {}
        node = node["n"]
    assert read_yaml(write(folder, dump(doc), "fine.yaml"))["description"] == "x"


def test_a_huge_file_is_refused_unread(folder, monkeypatch):
    path = folder / "huge.yaml"
    with path.open("w") as fh:
        fh.write("description: '")
        fh.write("x" * safe_yaml.MAX_RECIPE_BYTES)
        fh.write("'\n")
    parsed = []
    monkeypatch.setattr(safe_yaml, "parse_yaml", lambda text: parsed.append(text))
    with pytest.raises(
        RecipeError, match=r"too large: 1,000,016 bytes \(at most 1,000,000\)"
    ) as err:
        load_recipe(path)
    assert err.value.file == str(path) and not parsed


def test_many_plain_values_are_too_large(folder, monkeypatch):
    # 100,001 values fit in 1 MB, so the value count is a limit of its own (tested smaller: fast).
    assert len("[" + ",".join(["1"] * 100_001) + "]") < safe_yaml.MAX_RECIPE_BYTES
    monkeypatch.setattr(safe_yaml, "MAX_VALUES", 1000)
    ok = "description: [" + ",".join(["1"] * 997) + "]\n"  # mapping, key, list, 997 numbers
    assert len(read_yaml(write(folder, ok, "wide-ok.yaml"))["description"]) == 997
    text = "description: [" + ",".join(["1"] * 998) + "]\n"
    with pytest.raises(RecipeError, match=r"too large: the document holds more than 1000 values"):
        read_yaml(write(folder, text, "wide.yaml"))


# -- tags that would construct Python objects ----------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/apply:subprocess.call [[touch, '{marker}']]",
        "!!python/object/new:subprocess.Popen [[touch, '{marker}']]",
        "!!python/object:pathlib.Path {{}}",
        "!!python/name:os.system",
        "!!python/module:os",
        "!!python/tuple [1, 2]",
        "!<tag:yaml.org,2002:python/object/apply:os.system> ['touch {marker}']",
    ],
)
def test_python_tags_are_refused_with_the_line_and_nothing_runs(folder, tmp_path, tag):
    marker = tmp_path / "ran"
    text = dump(VALID) + "description: " + tag.format(marker=marker) + "\n"
    line = text.count("\n")
    path = write(folder, text, "evil.yaml")
    with pytest.raises(RecipeError, match=rf"line {line}, column 14: could not determine") as err:
        load_recipe(path)
    assert "a recipe holds plain values only" in str(err.value)
    assert err.value.file == str(path)
    assert not marker.exists()
