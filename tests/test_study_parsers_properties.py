"""Property-based tests of the study-side parsers (Hypothesis): whatever the input, the TOML
study parser gives a valid study or a ``StudyError`` naming the file, and the record parser a
checked record or a ``RecordError`` with a reason; never anything else.

Failing examples Hypothesis found are kept as ``@example`` regression cases."""

import json

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from test_records import valid_record

from ffnn.studies.plan import StudyOptions, plan_study
from ffnn.studies.records import FIELDS, RecordError, check_record, encode_record, parse_record_line
from ffnn.studies.report import table_markdown
from ffnn.studies.specs import StudyError, StudySpec, parse_study, study_from_mapping
from ffnn.studies.store import scan_records
from ffnn.studies.table import build_rows

# The autouse scratch-directory fixture is function-scoped; no example depends on it.
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}
SOURCE = "study.toml"
IDENTITY = {d: {"fingerprint": "f" * 32, "train_size": 300, "val_size": 100, "test_size": 100,
                "split_seed": 0} for d in ("float32", "float64")}
GOOD = ('name = "mine"\nparameter = "learning_rate"\nvalues = [0.1, 1, 1e-3]\nlabel = "LR"\n'
        '[base]\noptimizer = "gd"\nhidden_size = 8\n')
FIELD_NAMES = ["name", "parameter", "values", "label", "description", "base", "learning_rate",
               "hidden_size", "optimizer", "activation", "l2", "early_stopping", "batch_size",
               "seed", "momentum", "dtype", "patience", "max_epochs", "width"]
SCALARS = (st.none() | st.booleans() | st.integers() | st.just(10**400)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["adam", "gd", "relu", "float32", "l2", "hidden_size", "x"]))
NEAR = st.sampled_from([0, 1, -1, 0.5, 1.5, 1e300, True, "x", "", [], {}, "a" * 64])
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8) | st.sampled_from(FIELD_NAMES), inner,
                                      max_size=4), max_leaves=12)


def assert_valid_study(spec: StudySpec) -> None:
    """A study the runner can plan: every setting's config builds, no two share a key."""
    assert spec.values and spec.source == SOURCE
    runs = plan_study(spec, StudyOptions(repeats=1, backend="numpy"), IDENTITY)
    assert len({run.key for run in runs}) == len(spec.values)


def parse_or_refuse(data: bytes) -> None:
    try:
        spec = parse_study(data, SOURCE)
    except StudyError as e:
        assert str(e).startswith(f"{SOURCE}: ") and len(str(e)) > len(SOURCE) + 2
        event("refused")
    else:
        assert_valid_study(spec)
        event("a study")


@settings(max_examples=300, **SETTINGS)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@example(b"a=" + b"[" * 3000)  # tomllib recursed too deeply
@example(b"\xff")
@example(b"a = " + b"9" * 5000)  # tomllib: a bare ValueError (int of more than 4300 digits)
def test_random_bytes_give_a_study_error_or_a_study(data):
    parse_or_refuse(data)


@st.composite
def mutated_toml(draw) -> bytes:
    """The valid study with a few characters deleted, inserted or replaced."""
    text = GOOD
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        end = draw(st.integers(at, min(len(text), at + 6)))
        text = text[:at] + draw(st.text(alphabet='[]{}=."\'\n ,#0123456789e-+adminvalues_',
                                        max_size=6)) + text[end:]
    return text.encode()


@settings(max_examples=400, **SETTINGS)
@given(mutated_toml())
@example(b'name = "mine"\nparameter = "l2"\nvalues = [0, 0.0, 1e-3]\n')  # one key for two
@example(b'name = "mine"\nparameter = "l2"\nvalues = [0.0]\n[base]\nactivation = "x"\n')
@example(b'name = "mine"\nparameter = "l2"\nvalues = [1979-05-27]\n')  # a TOML date
@example(b'name = "mine"\nparameter = "optimizer"\nvalues = [nan, nan]\n')
def test_mutated_study_files_give_a_study_error_or_a_study(data):
    parse_or_refuse(data)


# Values near and across the edges of what each field accepts (TOML gives ints, floats,
# strings, booleans, lists, tables).
PLAUSIBLE = {
    "learning_rate": st.floats(-0.1, 2.0) | st.integers(-1, 3),
    "hidden_size": st.integers(-1, 64) | st.floats(0, 8),
    "optimizer": st.sampled_from(["adam", "gd", "nesterov", "rmsprop", "sgd", ""]),
    "activation": st.sampled_from(["relu", "elu", "tanh", "softplus"]),
    "l2": st.floats(-1e-3, 1e-2) | st.integers(-1, 2),
    "early_stopping": st.booleans() | st.integers(0, 1),
    "batch_size": st.integers(0, 500),
    "momentum": st.floats(-0.5, 1.5) | st.just(float("nan")),
}


@st.composite
def study_table(draw) -> dict:
    """A parsed study file: mostly plausible fields, sometimes anything at all."""
    parameter = draw(st.sampled_from(sorted(PLAUSIBLE)))
    near = PLAUSIBLE[parameter] | SCALARS if draw(st.booleans()) else PLAUSIBLE[parameter]
    doc = {"name": "mine", "parameter": parameter,
           "values": draw(st.lists(near, min_size=1, max_size=5)),
           "base": {field: draw(PLAUSIBLE[field])
                    for field in draw(st.sets(st.sampled_from(sorted(PLAUSIBLE)), max_size=3))}}
    doc.update(draw(st.dictionaries(st.sampled_from(FIELD_NAMES), JSON, max_size=2)))
    return doc


@settings(max_examples=400, **SETTINGS)
@given(study_table())
@example({"name": "mine", "parameter": "l2", "values": [0, 0.0]})
@example({"name": "mine", "parameter": "l2", "values": [10**400]})  # OverflowError converting
@example({"name": "mine", "parameter": "l2", "values": [0.0], "base": {"eps": 10**400}})
@example({"name": "mine", "parameter": "l2", "values": [0.0, -0.0]})
@example({"name": "mine", "parameter": "hidden_size", "values": [1, 1.0]})
@example({"name": "mine", "parameter": "l2", "values": [0.0], "base": {"hidden_size": [[[1]]]}})
def test_random_study_tables_give_a_study_error_or_a_study(doc):
    try:
        spec = study_from_mapping(doc, SOURCE)
    except StudyError as e:
        assert str(e).startswith(f"{SOURCE}: ")
        event("refused")
    else:
        assert_valid_study(spec)
        event("a study")


# --------------------------------------------------------------------------- records


def accepted_or_refused(line: bytes) -> None:
    """The promise of ``parse_record_line``: a record every reader can use, or a reason."""
    try:
        record = parse_record_line(line)
    except RecordError as e:
        assert str(e)
        event("refused")
        return
    event("a record")
    assert check_record(record) == record or _nan_equal(check_record(record), record)
    again = parse_record_line(encode_record(record).rstrip(b"\n"))
    assert _nan_equal(again, record)
    [row] = build_rows([(record["setting"], {record["parameter"]: record["value"]},
                         record["key"])], {record["key"]: record})
    for name in ("train_time", "epoch_cost", "epochs", "test_loss", "test_accuracy"):
        row.stat(name)
    table_markdown(StudySpec.one("s", "", record["parameter"], (record["value"],)), [row])


def _nan_equal(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@settings(max_examples=300, **SETTINGS)
@given(JSON)
@example({"key": "a" * 64, "note": "x"})
@example([[[[[]]]]])
def test_random_json_is_a_record_or_refused_with_a_reason(obj):
    accepted_or_refused(json.dumps(obj).encode())


@st.composite
def mutated_record(draw) -> dict:
    """A valid record with fields removed, replaced by random JSON, or nulled."""
    record = valid_record(diverged=draw(st.booleans()))
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(FIELDS)))
        action = draw(st.sampled_from(["drop", "replace", "null"]))
        if action == "drop":
            record.pop(name, None)
        else:
            record[name] = None if action == "null" else draw(NEAR | JSON)
    return record


@settings(max_examples=400, **SETTINGS)
@given(mutated_record())
@example(valid_record(test_accuracy=None))  # silently a "—" cell before
@example(valid_record(diverged=True, test_loss=None, test_accuracy=None))
@example(valid_record(format=1, grouped="yes"))
@example(valid_record(train_time=1e400))  # json.dumps writes Infinity
@example(valid_record(config={"learning_rate": 10**400}))  # OverflowError in TrainConfig
def test_mutated_records_are_records_or_refused_with_a_reason(record):
    accepted_or_refused(json.dumps(record).encode())


@settings(max_examples=200, **SETTINGS)
@given(st.integers(0, 2000), st.binary(max_size=3).filter(lambda b: b"\n" not in b))
@example(0, b"")  # a blank line: skipped, no record and no complaint
@example(10**6, b"}")  # the cut-off brace put back: the record again
def test_a_truncated_or_garbled_line_is_refused_and_the_records_around_it_stay(cut, junk):
    lines = [encode_record(valid_record(key)) for key in "abc"]
    middle = lines[1][:min(cut, len(lines[1]) - 2)] + junk
    data = lines[0] + middle + b"\n" + lines[2]
    records, end, bad = scan_records("results.jsonl", data)  # never raises
    assert end == len(data)
    assert [r["key"][0] for r in records] in (["a", "c"], ["a", "b", "c"])
    assert len(records) + len(bad) == (3 if middle.strip() else 2)
    assert [(problem.line, bool(problem.reason)) for problem in bad] in ([], [(2, True)])
