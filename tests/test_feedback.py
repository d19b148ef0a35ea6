"""Reading human ratings: long and wide formats, bad rows, and the upsert into the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clinsum.errors import InputError
from clinsum.feedback import FlagRule, load_ratings
from clinsum.inputs import InvalidRecords
from clinsum.records import Rating
from clinsum.store import Store


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def rating_row(**overrides: object) -> dict:
    row: dict = {"note_id": "n1", "system": "production", "rater": "dr-a", "dimension": "accurate",
                 "value": 4}
    row.update(overrides)
    return row


def test_jsonl_ratings_are_read_with_comments_and_booleans(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [
        rating_row(comment="  missed the allergy  "),
        rating_row(dimension="unsafe", value=True),
        rating_row(note_id=7, rater="dr-b", value=2.5),
    ])
    loaded = load_ratings(path)
    assert loaded.skipped == []
    assert loaded.records == [
        Rating(note_id="n1", system="production", rater="dr-a", dimension="accurate", value=4,
               comment="missed the allergy"),
        Rating(note_id="n1", system="production", rater="dr-a", dimension="unsafe", value=1.0),
        Rating(note_id="7", system="production", rater="dr-b", dimension="accurate", value=2.5),
    ]


def test_csv_ratings_with_optional_comment_and_words_for_flags(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("note_id,system,rater,dimension,value,comment\n"
                    "n1,prod,dr-a,accurate, 5 ,\n"
                    'n2,prod,dr-a,unsafe,false,"looks fine, thorough"\n')
    records = load_ratings(path).records
    assert [(r.note_id, r.dimension, r.value, r.comment) for r in records] == [
        ("n1", "accurate", 5.0, None), ("n2", "unsafe", 0.0, "looks fine, thorough")]


@pytest.mark.parametrize(("row", "field", "message"), [
    (rating_row(value="good"), "value", "is not a number"),
    (rating_row(value=None), "value", "missing value"),
    (rating_row(value="nan"), "value", "not a finite number"),
    (rating_row(value=[4]), "value", "must be a number"),
    (rating_row(rater=""), "rater", "rater is empty"),
    ({k: v for k, v in rating_row().items() if k != "system"}, "system", "missing system"),
    (rating_row(dimension=3.5), "dimension", "must be a string"),
    (rating_row(score=3), "score", "unknown field 'score'"),
    (rating_row(comment=5), "comment", "comment must be a string"),
    (rating_row(value=6), "value", "accurate is a rubric attribute rated 1 to 5, got 6"),
    (rating_row(value=0), "value", "rated 1 to 5, got 0; leave a not-applicable rating out"),
    (rating_row(dimension="cited", value=-1), "value", "cited is a rubric attribute rated 1 to 5"),
    ('{"note_id": "n1", "system": "p", "rater": "a", "dimension": "unsafe", "value": NaN}', None,
     "values must be finite"),
    ('{"note_id": "n1", "system": "p", "rater": "a", "dimension": "x", "value": -Infinity}', None,
     "values must be finite"),
])
def test_bad_rows_name_file_line_and_field(tmp_path: Path, row: dict | str, field: str | None,
                                          message: str) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [rating_row(note_id="ok"), row])
    with pytest.raises(InputError) as caught:
        load_ratings(path)
    assert (caught.value.path, caught.value.line, caught.value.field) == (str(path), 2, field)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_skip_invalid_keeps_the_good_rows_and_lists_the_bad(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [
        rating_row(note_id="a"),
        "{not json",
        rating_row(note_id="b", value="n/a"),
        rating_row(note_id="c"),
        rating_row(note_id="a"),  # duplicate of line 1
    ])
    loaded = load_ratings(path, skip_invalid=True)
    assert [r.note_id for r in loaded.records] == ["a", "c"]
    assert [(e.line, e.field) for e in loaded.skipped] == [(2, None), (3, "value"), (5, "dimension")]
    assert "invalid JSON" in str(loaded.skipped[0])
    assert "first at line 1" in str(loaded.skipped[2])


def test_other_dimensions_take_any_finite_number(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [rating_row(dimension="minutes_saved", value=-12.5),
                                              rating_row(dimension="hallucinations", value=7)])
    assert [r.value for r in load_ratings(path).records] == [-12.5, 7.0]


def test_wide_rating_outside_the_scale_names_its_column(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("note_id,system,rater,accurate,thorough\nn1,prod,dr-a,4,9\n")
    with pytest.raises(InputError) as caught:
        load_ratings(path, dimension_columns=["accurate", "thorough"])
    assert (caught.value.line, caught.value.field) == (2, "thorough")


def test_every_bad_rating_is_reported_without_skip_invalid(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [rating_row(note_id="a"), rating_row(note_id="b", value=9),
                                              "{not json", rating_row(note_id="c", value="x")])
    with pytest.raises(InvalidRecords) as caught:
        load_ratings(path)
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "value"), (3, None), (4, "value")]
    assert str(caught.value).startswith(f"{path}: 3 invalid ratings")


def test_csv_row_with_a_missing_cell_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("note_id,system,rater,dimension,value\nn1,prod,dr-a,accurate,4\nn2,prod,dr-a,4\n")
    with pytest.raises(InputError, match=r"r\.csv:3: row has 4 cells"):
        load_ratings(path)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds no ratings"):
        load_ratings(write_jsonl(tmp_path / "r.jsonl", []))


def test_wide_format_one_column_per_dimension(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("note_id,system,rater,accurate,unsafe,comment\n"
                    "n1,prod,dr-a,4,no,fine\n"
                    "n2,prod,dr-a,,yes,\n"
                    "n3,prod,dr-a,,,\n")
    with pytest.raises(InputError) as caught:
        load_ratings(path, dimension_columns=["accurate", "unsafe"])
    assert caught.value.line == 4 and "no value in any of the dimension columns" in str(caught.value)
    loaded = load_ratings(path, dimension_columns=["accurate", "unsafe"], skip_invalid=True)
    assert [(r.note_id, r.dimension, r.value, r.comment) for r in loaded.records] == [
        ("n1", "accurate", 4.0, "fine"), ("n1", "unsafe", 0.0, "fine"), ("n2", "unsafe", 1.0, None)]


def test_long_csv_with_an_unknown_column_is_refused_as_a_whole(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("note_id,system,rater,accurate\nn1,prod,dr-a,4\n")
    with pytest.raises(InputError, match="accurate"):
        load_ratings(path)


def test_store_upserts_ratings_on_note_system_rater_dimension(tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "first.jsonl", [rating_row(), rating_row(rater="dr-b", value=2)])
    second = write_jsonl(tmp_path / "second.jsonl", [rating_row(value=1, comment="changed my mind")])
    store = Store.open(tmp_path / "s.db")
    try:
        assert store.add_ratings(load_ratings(first).records, "first.jsonl") == 2
        store.add_ratings(load_ratings(second).records, "second.jsonl")
        assert {(r.rater, r.value, r.comment) for r in store.ratings()} == {
            ("dr-a", 1.0, "changed my mind"), ("dr-b", 2.0, None)}
    finally:
        store.close()


@pytest.mark.parametrize(("text", "name", "operator", "threshold"), [
    ("unsupported_concepts>=1", "unsupported_concepts", ">=", 1.0),
    ("HallucinationRate>0", "HallucinationRate", ">", 0.0),
    (" judge_accurate <= 2.5", "judge_accurate", "<=", 2.5),
    ("unsafe==1", "unsafe", "==", 1.0),
])
def test_flag_rules_parse(text: str, name: str, operator: str, threshold: float) -> None:
    rule = FlagRule.parse(text)
    assert (rule.name, rule.operator, rule.threshold) == (name, operator, threshold)


def test_flag_rules_apply_and_refuse_nonsense() -> None:
    rule = FlagRule.parse("x>=1")
    assert rule.applies(1.0) and not rule.applies(0.99)
    assert not FlagRule.parse("x>0").applies(0.0)
    for bad in ("x", ">=1", "x>=high", "x>=nan"):
        with pytest.raises(ValueError, match="NAME>=NUMBER"):
            FlagRule.parse(bad)
