"""One consistent command line: --version, -h, completion, one meaning per option,
validated choices, full run ids or unique prefixes, JSON wherever a table is printed,
text that rich never eats, and a missing concepts extra that stops the run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import ScriptedProvider
from judge_fakes import ScriptedJudge, always
from typer.testing import CliRunner

from clinsum import __version__
from clinsum.cli import app
from clinsum.cli.common import EXIT_ERROR
from clinsum.errors import ConfigError, StoreError
from clinsum.providers import registry
from clinsum.records import Note, Rating, Score
from clinsum.store import Store

NOTES = [
    {"id": "a", "text": "Patient has hypertension. Denies chest pain.", "reference": "Hypertension."},
    {"id": "b", "text": "Type 2 diabetes. Started metformin.", "reference": "Diabetes on metformin."},
    {"id": "c", "text": "Cough for three days. No fever.", "reference": "Cough without fever."},
]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def notes_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(json.dumps(n) + "\n" for n in NOTES))
    return path


@pytest.fixture(autouse=True)
def echo_provider() -> None:
    registry.register("echo", lambda spec, options: ScriptedProvider(
        spec, options, default=lambda request: request.note.text.split(".")[0] + "."))


def a_run(db: Path, notes_file: Path, *systems: str, extra: tuple[str, ...] = ()) -> str:
    args = ["run", "--notes", str(notes_file), "-e", "length", "--db", str(db), *extra]
    for system in systems:
        args += ["-p", system]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return str(json.loads(invoke("runs", "--db", str(db), "-f", "json").stdout)[0]["id"])


# -- 1. --version, -h, completion ------------------------------------------------------------------

def test_version_prints_the_installed_version() -> None:
    for flag in ("--version", "-V"):
        result = invoke(flag)
        assert result.exit_code == 0 and result.stdout.strip() == f"clinsum {__version__}"


def test_every_command_takes_dash_h() -> None:
    import typer.main

    group = typer.main.get_command(app)
    paths = [[name] for name in group.commands]  # type: ignore[attr-defined]
    paths += [["feedback", sub] for sub in group.commands["feedback"].commands]  # type: ignore[attr-defined]
    assert ["concepts"] in paths and ["feedback", "import"] in paths and len(paths) >= 10
    for path in paths:
        short, long = invoke(*path, "-h"), invoke(*path, "--help")
        assert short.exit_code == 0, (path, short.output)
        assert short.stdout == long.stdout and "Usage: clinsum" in short.stdout, path


def test_shell_completion_completes_commands_and_options() -> None:
    script = invoke("--show-completion", "bash")
    assert script.exit_code == 0 and "_CLINSUM_COMPLETE=complete_bash" in script.stdout

    def complete(words: str) -> list[str]:
        result = CliRunner().invoke(app, [], env={"_CLINSUM_COMPLETE": "complete_bash",
                                                  "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)},
                                    prog_name="clinsum")
        return result.stdout.split()

    assert complete("clinsum ru") == ["run", "runs"]
    assert "--sort-by" in complete("clinsum show --so")


def test_help_stays_free_of_heavy_imports_with_completion_and_version() -> None:
    code = ("import sys; from typer.testing import CliRunner; from clinsum.cli import app; "
            "r = CliRunner().invoke(app, ['--version']); assert r.exit_code == 0, r.output; "
            "CliRunner().invoke(app, ['-h']); CliRunner().invoke(app, ['show', '-h']); "
            "print([m for m in sys.modules if m.split('.')[0] in ('numpy', 'spacy', 'anthropic', 'scipy')])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -- 2. one meaning per option ---------------------------------------------------------------------

def test_evaluator_option_names_evaluators_and_the_old_metric_flag_warns(tmp_path: Path, notes_file: Path) -> None:
    db = tmp_path / "c.db"
    new = invoke("run", "--notes", str(notes_file), "-p", "echo:x", "-e", "length", "--db", str(db))
    assert new.exit_code == 0 and "deprecated" not in new.output
    old = invoke("run", "--notes", str(notes_file), "-p", "echo:x", "-m", "length", "--db", str(db))
    assert old.exit_code == 0
    assert "--metric/-m names an evaluator here, which is deprecated: use --evaluator/-e" in old.output
    store = Store.open(db)
    new_run, old_run = (r["id"] for r in store.runs())
    metrics = {s.metric for s in store.scores(new_run)}
    assert {s.metric for s in store.scores(old_run)} == metrics  # the same evaluators, and only them
    assert "summary_words" in metrics and "rouge1" not in metrics
    store.close()


def test_a_metric_given_as_an_evaluator_says_what_it_is(tmp_path: Path, notes_file: Path) -> None:
    result = invoke("run", "--notes", str(notes_file), "-p", "echo:x", "-e", "judge_accurate",
                    "--db", str(tmp_path / "c.db"))
    assert result.exit_code == EXIT_ERROR
    assert "unknown evaluator 'judge_accurate'" in result.output and "is a metric" in result.output


def test_help_of_run_score_and_agreement_agree_on_the_letters() -> None:
    run_help, score_help = invoke("run", "-h").stdout, invoke("score", "-h").stdout
    agreement_help = invoke("agreement", "-h").stdout
    for text in (run_help, score_help):
        assert "--evaluator" in text and "--metric" not in text  # the alias is hidden
    assert "--metric" in agreement_help and "--evaluator" not in agreement_help


# -- 3. choices are validated ----------------------------------------------------------------------

def test_sort_by_typo_is_an_error_naming_the_metrics(tmp_path: Path, notes_file: Path) -> None:
    db = tmp_path / "c.db"
    run_id = a_run(db, notes_file, "echo:x")
    for command in (["show", run_id], ["run", "--notes", str(notes_file), "-p", "echo:x", "-e", "length"]):
        result = invoke(*command, "--db", str(db), "--sort-by", "sumary_words")
        assert result.exit_code == EXIT_ERROR, result.output
        assert "--sort-by 'sumary_words' is not a metric; did you mean 'summary_words'?" in result.output
    # the run with the typo was refused before it started
    assert len(json.loads(invoke("runs", "--db", str(db), "-f", "json").stdout)) == 1
    ok = invoke("show", run_id, "--db", str(db), "--sort-by", "summary_words")
    assert ok.exit_code == 0 and "ranked by summary_words" in ok.stdout


def test_ordered_refuses_a_metric_the_rows_do_not_have() -> None:
    from clinsum import reports
    from clinsum.evaluators.aggregate import aggregate

    rows = aggregate([Score(note_id="n", system="s", metric="rouge1", value=0.5, evaluator="overlap",
                            version="1")])
    assert reports.ordered(rows, "rouge1")[1] == "rouge1"
    with pytest.raises(ConfigError, match=r"'judge_accurate' is not a metric .*metrics of this run: rouge1"):
        reports.ordered(rows, "judge_accurate")


def test_agreement_refuses_a_metric_or_dimension_it_does_not_have(tmp_path: Path, notes_file: Path) -> None:
    db = tmp_path / "c.db"
    a_run(db, notes_file, "echo:x")
    store = Store.open(db)
    store.add_ratings([Rating(note_id=n["id"], system="echo:x", rater="dr-a", dimension="accurate", value=v)
                       for n, v in zip(NOTES, (1, 3, 4), strict=True)], source="test")
    store.close()
    ok = invoke("agreement", "--db", str(db), "-m", "summary_words", "--dimension", "accurate", "-f", "json")
    assert ok.exit_code == 0, ok.output
    for args, message in [
        (["-m", "summary_words", "-m", "sumary_words"],
         "--metric 'sumary_words' is not a scored metric; did you mean 'summary_words'?"),
        (["--dimension", "acurate"], "--dimension 'acurate' is not a rated dimension; did you mean 'accurate'? "
                                     "(rated dimensions: accurate)"),
    ]:
        result = invoke("agreement", "--db", str(db), *args)
        assert result.exit_code == EXIT_ERROR, result.output
        assert message in result.output


def test_score_checks_sort_by_before_reading_anything(tmp_path: Path, notes_file: Path) -> None:
    result = invoke("score", str(tmp_path / "absent.jsonl"), "--notes", str(notes_file),
                    "--db", str(tmp_path / "c.db"), "--sort-by", "nonsense")
    assert result.exit_code == EXIT_ERROR and "'nonsense' is not a metric" in result.output


# -- 4. full run ids, unique prefixes, JSON everywhere -------------------------------------------

def test_runs_table_shows_every_full_id_even_when_narrow(tmp_path: Path, notes_file: Path) -> None:
    db = tmp_path / "c.db"
    long_names = tuple(f"echo:{'very-long-system-name-' * 3}{k}" for k in range(3))
    a_run(db, notes_file, *long_names)
    a_run(db, notes_file, "echo:x")
    ids = [r["id"] for r in json.loads(invoke("runs", "--db", str(db), "-f", "json").stdout)]
    table = CliRunner().invoke(app, ["runs", "--db", str(db)], env={"COLUMNS": "70"}).stdout
    assert all(run_id in table for run_id in ids), table


def test_a_unique_prefix_names_a_run_and_an_ambiguous_one_lists_the_matches(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = Store.open(db)
    for run_id in ("20250101-120000-aaaa", "20250101-120000-aabb", "20250202-090000-cccc"):
        store.create_run(run_id, {}, kind="score", version="t", notes=[Note(id="n", text="x")])
        store.add_scores(run_id, [Score(note_id="n", system=f"sys-{run_id[-4:]}", metric="rouge1",
                                        value=0.5, evaluator="overlap", version="1")])
    assert store.resolve_run_id("20250202") == "20250202-090000-cccc"
    assert store.resolve_run_id("20250101-120000-aaaa") == "20250101-120000-aaaa"  # exact wins over prefix
    with pytest.raises(StoreError, match="no run '20250202'"):
        store.run("20250202")  # only the command's one resolution takes prefixes: no lookup half-finds a run
    store.close()

    shown = invoke("show", "20250202", "--db", str(db), "-f", "json")
    assert shown.exit_code == 0 and {r["system"] for r in json.loads(shown.stdout)} == {"sys-cccc"}
    ambiguous = invoke("show", "20250101-120000-a", "--db", str(db))
    assert ambiguous.exit_code == EXIT_ERROR
    assert "ambiguous" in ambiguous.output and "20250101-120000-aaaa" in ambiguous.output \
        and "20250101-120000-aabb" in ambiguous.output
    unknown = invoke("show", "1999", "--db", str(db))
    assert unknown.exit_code == EXIT_ERROR and "no run '1999'" in unknown.output
    agreement = invoke("agreement", "--run", "20250101-120000-aab", "--db", str(db), "-f", "json")
    assert "ambiguous" not in agreement.output and "no run" not in agreement.output
    exported = invoke("export", "20250202", "--db", str(db), "--out", str(tmp_path / "export"), "-f", "jsonl")
    assert exported.exit_code == 0, exported.output
    [score] = [json.loads(line) for line in (tmp_path / "export" / "scores.jsonl").read_text().splitlines()]
    assert score["system"] == "sys-cccc"  # the run's records, not an empty export of a half-found run
    reported = invoke("report", "20250202", "--db", str(db), "--md", str(tmp_path / "r.md"))
    assert reported.exit_code == 0, reported.output
    assert "sys-cccc" in (tmp_path / "r.md").read_text()


def test_resume_and_compare_judge_accept_a_prefix(tmp_path: Path, notes_file: Path) -> None:
    db = tmp_path / "c.db"
    run_id = a_run(db, notes_file, "echo:x", "echo:y")
    resumed = invoke("run", "--resume", run_id[:-2], "--db", str(db))
    assert resumed.exit_code == 0, resumed.output
    assert run_id in resumed.output
    registry.register("fake", lambda spec, options: ScriptedJudge(spec, [always("A")], repeat_last=True))
    compared = invoke("compare-judge", "--judge", "fake:j", "--run", run_id[:-2], "--db", str(db), "-f", "json")
    assert compared.exit_code == 0, compared.output
    assert json.loads(compared.stdout)["run"] == run_id


@pytest.mark.parametrize("command", [
    ["runs"], ["show", "RUN"], ["providers"], ["agreement"], ["concepts", "NOTE"],
    ["run", "--notes", "NOTES", "-p", "echo:y", "-e", "length"],
    ["score", "SUMMARIES", "--notes", "NOTES", "-e", "length"],
])
def test_every_table_has_a_json_form(tmp_path: Path, notes_file: Path, command: list[str]) -> None:
    db = tmp_path / "c.db"
    run_id = a_run(db, notes_file, "echo:x")
    store = Store.open(db)
    store.add_ratings([Rating(note_id=n["id"], system="echo:x", rater="dr-a", dimension="accurate", value=v)
                       for n, v in zip(NOTES, (1, 3, 4), strict=True)], source="test")
    store.close()
    note = tmp_path / "note.txt"
    note.write_text("Denies chest pain.")
    summaries = tmp_path / "summaries.jsonl"
    summaries.write_text(json.dumps({"note_id": "a", "system": "prod", "text": "Hypertension."}) + "\n")
    args = [{"RUN": run_id, "NOTE": str(note), "NOTES": str(notes_file), "SUMMARIES": str(summaries)}.get(a, a)
            for a in command]
    if command[0] not in ("providers", "concepts"):
        args += ["--db", str(db)]
    result = invoke(*args, "-f", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)  # the whole of stdout is one JSON document, not empty


# -- 5. rich markup never eats text ----------------------------------------------------------------

def test_providers_fix_hint_keeps_its_brackets(monkeypatch: pytest.MonkeyPatch) -> None:
    from clinsum.cli import providers as providers_cli

    monkeypatch.setattr(providers_cli, "module_installed", lambda name: False)
    monkeypatch.setenv("OLLAMA_HOST", "http://[::1]:11434")
    result = CliRunner().invoke(app, ["providers"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert "pip install 'clinsum[vertex]'" in result.stdout
    assert "pip install 'clinsum[anthropic]'" in result.stdout
    assert "http://[::1]:11434" in result.stdout


def test_errors_names_and_paths_with_brackets_print_whole(tmp_path: Path, notes_file: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "out[bold]"
    folder.mkdir()
    db = folder / "c[red].db"
    run_id = a_run(db, notes_file, "echo:vendor[v2]")
    shown = CliRunner().invoke(app, ["show", run_id, "--db", str(db)], env={"COLUMNS": "200"})
    assert "echo:vendor[v2]" in shown.stdout
    runs = CliRunner().invoke(app, ["runs", "--db", str(db)], env={"COLUMNS": "200"})
    assert "echo:vendor[v2]" in runs.stdout and "c[red].db" in runs.stdout

    from clinsum.cli import history

    def boom(*args, **kwargs):
        raise ConfigError("see [bold]this[/bold] and pip install 'clinsum[concepts]'")
    monkeypatch.setattr(history, "open_store", boom)
    failed = invoke("runs", "--db", str(db))
    assert failed.exit_code == EXIT_ERROR
    assert "see [bold]this[/bold] and pip install 'clinsum[concepts]'" in failed.output


# -- 6. a missing concepts extra stops the run -----------------------------------------------------

@pytest.mark.parametrize("module", ["spacy", "scispacy.abbreviation", "rapidfuzz.distance"])
def test_missing_concepts_extra_is_an_error_naming_the_install(tmp_path: Path, notes_file: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    db = tmp_path / "c.db"
    for evaluator in ("coverage", "facts"):
        result = invoke("run", "--notes", str(notes_file), "-p", "echo:x", "-e", evaluator, "--db", str(db))
        assert result.exit_code == EXIT_ERROR, result.output
        assert "pip install 'clinsum[concepts]'" in result.output and f"'{module}'" in result.output
    assert json.loads(invoke("runs", "--db", str(db), "-f", "json").stdout) == []  # nothing ran
    summaries = tmp_path / "summaries.jsonl"
    summaries.write_text(json.dumps({"note_id": "a", "system": "prod", "text": "Hypertension."}) + "\n")
    scored = invoke("score", str(summaries), "--notes", str(notes_file), "-e", "coverage", "--db", str(db))
    assert scored.exit_code == EXIT_ERROR and "pip install 'clinsum[concepts]'" in scored.output
    assert json.loads(invoke("runs", "--db", str(db), "-f", "json").stdout) == []
    concepts = CliRunner().invoke(app, ["concepts", "-"], input="Denies chest pain.")
    assert concepts.exit_code == EXIT_ERROR and "pip install 'clinsum[concepts]'" in concepts.output


def test_the_demo_skips_coverage_out_loud_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from clinsum.cli import evaluation

    monkeypatch.setitem(sys.modules, "rapidfuzz.distance", None)
    config = evaluation._demo_config()
    assert "coverage" not in config.metrics
