"""ConText assertion: each status, scope rules, sections, dialogues, and the labelled sentence set."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from clinsum.concepts.assertion import RULES_VERSION, assertion_of, assertions_for, in_open_question, load_rules
from clinsum.concepts.sections import find_sections, find_turns, is_affirmative_answer, is_negative_answer

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "assertion_sentences.tsv"


def status(text: str, phrase: str, occurrence: int = 0) -> str:
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(phrase, start + 1)
    return assertion_of(text, start, start + len(phrase))


@pytest.mark.parametrize(("text", "phrase", "expected"), [
    ("He reports chest pain on exertion.", "chest pain", "present"),
    ("He denies chest pain.", "chest pain", "negated"),
    ("Chest x-ray shows no evidence of pneumonia.", "pneumonia", "negated"),
    ("The strep test was negative.", "strep", "negated"),
    ("Possible pneumonia in the right lower lobe.", "pneumonia", "possible"),
    ("We will obtain an ultrasound to rule out gallstones.", "gallstones", "possible"),
    ("He has a history of hypertension.", "hypertension", "historical"),
    ("She is status post appendectomy.", "appendectomy", "historical"),
    ("Her mother has breast cancer.", "breast cancer", "family"),
    ("Ovarian cancer in her maternal aunt.", "Ovarian cancer", "family"),
    ("Return to the clinic if chest pain recurs.", "chest pain", "hypothetical"),
    ("Take ibuprofen as needed for pain.", "pain", "hypothetical"),
])
def test_each_status(text: str, phrase: str, expected: str) -> None:
    assert status(text, phrase) == expected


@pytest.mark.parametrize(("text", "phrase", "expected"), [
    # a past year dates what follows it as well as what precedes it
    ("He was admitted in 2005 for pancreatitis.", "pancreatitis", "historical"),
    ("In 2019 she had a fracture of the left wrist.", "fracture", "historical"),
    # "since" a year is an onset, not a past event: the condition goes on
    ("He has had diabetes since 2010 and takes metformin.", "diabetes", "present"),
    # what has since resolved is past, however long ago it began
    ("She had a cough last month that has since resolved.", "cough", "historical"),
    ("He was on lisinopril until March, when it was switched to losartan.", "lisinopril", "historical"),
    # a present-tense clause about a medication ends a history's scope ...
    ("She has a history of DVT and is on warfarin.", "warfarin", "present"),
    ("She has a history of DVT and is on warfarin.", "DVT", "historical"),
    ("Diagnosed with asthma as a child, she still uses an albuterol inhaler.", "albuterol", "present"),
    # ... but not when it is what "no longer" denies
    ("He no longer takes gabapentin.", "gabapentin", "historical"),
    # a recent onset is present
    ("His knee pain started two days ago.", "knee pain", "present"),
    # "history significant for" is a past medical history, except a social or family one
    ("History significant for asthma and eczema.", "asthma", "historical"),
    ("Social history significant for daily alcohol use.", "alcohol", "present"),
    ("Ex-smoker, quit in his twenties.", "smoker", "historical"),
    ("He has a history of hypertension, well controlled on lisinopril.", "lisinopril", "present"),
    # a year of another event does not date a current finding after it
    ("He retired in 2015 and has back pain.", "back pain", "present"),
    ("In 2020 he started metformin.", "metformin", "present"),
    ("Moved here in 2021 with worsening dyspnea.", "dyspnea", "present"),
    ("Started lisinopril in 2019 for hypertension.", "hypertension", "present"),
    ("He was admitted in 2005 for pancreatitis.", "pancreatitis", "historical"),
    ("In 2022 he had a knee replacement and has knee pain.", "knee pain", "present"),
    ("In 2022 he had a knee replacement and has knee pain.", "knee replacement", "historical"),
    # a termination term is a word, not a piece of one ("mistakes" is not "takes")
    ("History of medication mistakes and falls.", "falls", "historical"),
])
def test_past_and_present_in_one_sentence(text: str, phrase: str, expected: str) -> None:
    assert status(text, phrase) == expected


def test_negation_scope_covers_a_list() -> None:
    text = "She denies weight gain, swelling in the legs, dizziness, nausea, vomiting, and diarrhea."
    assert {status(text, p) for p in ("weight gain", "dizziness", "vomiting", "diarrhea")} == {"negated"}


def test_negating_prefix() -> None:
    assert status("He is a nonsmoker.", "nonsmoker") == "negated"
    assert status("She is a non-smoker.", "smoker") == "negated"
    assert status("Nonalcoholic fatty liver disease.", "Nonalcoholic fatty liver disease") == "present"


def test_scope_ends_at_termination_terms() -> None:
    assert status("He denies chest pain but reports shortness of breath.", "shortness of breath") == "present"
    assert status("No fever, however she has a sore throat.", "sore throat") == "present"
    assert status("History of asthma, now presents with wheezing.", "wheezing") == "present"
    assert status("History of asthma, now presents with wheezing.", "asthma") == "historical"


def test_scope_ends_at_the_sentence() -> None:
    assert status("He denies headaches. He has neck stiffness.", "neck stiffness") == "present"
    assert status("Mr. Lee denies nausea.", "nausea") == "negated"  # "Mr." is no sentence end


def test_pseudo_triggers_do_not_negate() -> None:
    assert status("There has been no increase in swelling.", "swelling") == "present"
    assert status("Not only knee pain, she also has back pain.", "knee pain") == "present"
    assert status("Blood cultures grew gram negative rods.", "rods") == "present"


def test_adjacent_triggers_compose_and_separated_ones_do_not() -> None:
    assert status("No family history of colon cancer.", "colon cancer") == "negated"
    assert status("Denies chest pain, history of diabetes.", "diabetes") == "historical"


def test_experiencer_is_not_cut_by_time_or_negation_triggers() -> None:
    text = "His father died a few years ago of colon cancer and thyroid cancer."
    assert status(text, "colon cancer") == "family"
    assert status(text, "thyroid cancer") == "family"
    assert status("No fever, his mother has diabetes.", "diabetes") == "family"


def test_negative_result_scope() -> None:
    text = "Elevated creatinine and negative pregnancy test."
    assert status(text, "creatinine") == "present"
    assert status(text, "pregnancy") == "negated"
    assert status("No problems with urination, abdominal pain, or chest pain.", "chest pain") == "negated"


def test_section_defaults() -> None:
    note = ("PAST MEDICAL HISTORY\n\nHypertension.\n\nFAMILY HISTORY\n\nMother with diabetes.\n"
            "No family history of stroke.\n\nASSESSMENT AND PLAN\n\nPneumonia. Start amoxicillin.\n"
            "Return if fever persists.")
    assert status(note, "Hypertension") == "historical"
    assert status(note, "diabetes") == "family"
    assert status(note, "stroke") == "negated"  # negation wins over the family section
    assert status(note, "Pneumonia") == "present"  # diagnoses in assessment and plan are present
    assert status(note, "amoxicillin") == "present"  # planned treatment is recorded, not hypothetical
    assert status(note, "fever") == "hypothetical"


def test_sections_need_a_known_header() -> None:
    names = [s.name for s in find_sections("FH: father with MI\nCOPD.\nHIV\nPlan: inhaler")]
    assert names == ["family_history", "plan"]


def test_dialogue_answers_negate_the_question() -> None:
    text = ("Doctor: Any itching? \nPatient: Yes, a lot. \nDoctor: Any wheezing or shortness of breath? \n"
            "Patient: No. \nDoctor: okay . and any fever ?\n[patient] nope .")
    assert len(find_turns(text)) == 6
    assert status(text, "itching") == "present"
    assert status(text, "wheezing") == "negated"
    assert status(text, "shortness of breath") == "negated"
    assert status(text, "fever") == "negated"


@pytest.mark.parametrize(("reply", "denies"), [
    ("no .", True), ("uh , i have not .", True), ("um , no , nothing significant", True), ("not really", True),
    ("uh , none of that .", True), ("not in a while", True), ("i do n't think so", True), ("nope", True),
    ("not sure", False), ("i do n't know", False), ("yes", False), ("no drugs . i do drink socially", False),
    ("no fever some chills", False),
])
def test_denials_in_speech(reply: str, denies: bool) -> None:
    assert is_negative_answer(reply, 0, len(reply)) is denies


def test_confirmations_in_speech() -> None:
    for reply in ("yes", "yeah , i am", "a little bit", "mm-hmm . i did ."):
        assert is_affirmative_answer(reply, 0, len(reply)), reply
    for reply in ("uh , a bit of joint pain .", "no", "well , it depends"):
        assert not is_affirmative_answer(reply, 0, len(reply)), reply


def test_dialogue_answers_in_transcripts() -> None:
    text = ("[doctor] have you had a fever or chills ?\n[patient] uh , i have not .\n"
            "[doctor] any surgeries in the past ?\n[patient] i had my gallbladder out , but now i have back pain .\n"
            "[doctor] do you smoke or drink ?\n[patient] no drugs . i do drink alcohol socially .\n"
            "[doctor] any chest pain , nausea or vomiting ?\n[patient] well , i get headaches .\n"
            "[doctor] how often do you use your inhaler ?\n[patient] every day .")
    assert status(text, "fever") == "negated" and status(text, "chills") == "negated"
    assert status(text, "gallbladder") == "historical"  # a reply about the past...
    assert status(text, "back pain") == "present"  # ...until it turns to the present
    assert status(text, "alcohol") == "present"  # "no drugs" denies the drugs only
    assert in_open_question(text, text.index("chest pain"))  # asked, neither confirmed nor denied
    assert not in_open_question(text, text.index("fever"))
    assert not in_open_question(text, text.index("inhaler"))  # "how often" takes the inhaler as given


def test_unpunctuated_transcripts() -> None:
    text = ("[doctor] okay so before i examine you just want to make sure are you having any belly pain\n"
            "[patient] no\n[doctor] there is no swelling of the knee on your heart exam i do hear a grade two "
            "out of six systolic ejection murmur and we knew about that already so lem me look at your knee here "
            "and check the range of motion and the ligaments and the tendons of the knee today\n[patient] okay")
    assert status(text, "belly pain") == "negated"  # the "no" answers a question without a question mark
    assert status(text, "swelling") == "negated"
    assert status(text, "systolic ejection murmur") == "present"  # a scope stops in an unpunctuated run


@pytest.mark.parametrize(("text", "phrase", "expected"), [
    # ACI-Bench test1 "transcript" predictions (D2N113, D2N110): coverage logic 2 read both as negated, by a
    # denial 30 words earlier. Reading them right is what cost the MEDCON rank agreement 0.947 -> 0.934
    # (docs/concepts.md, Validation 2): keep them right.
    ("[patient] do i do i no otherwise i'm i'm feel pretty good i had my physical there was nothing else the "
     "the only thing i was telling my pcp is i do feel like tend to be really tired at the end of the day after "
     "working but otherwise i've been good", "tired", "present"),
    ("[doctor] there's no surrounding erythema or cellulitis and there's no evidence of fluid collection there's "
     "no necrosis there is no odor i do not appreciate any bony exposure on on vascular exam there are palpable "
     "bilateral femoral and popliteal pulses there are no palpable dp or pt pulses", "popliteal pulses", "present"),
    ("[doctor] there's no surrounding erythema or cellulitis and there's no evidence of fluid collection there's "
     "no necrosis there is no odor i do not appreciate any bony exposure on on vascular exam there are palpable "
     "bilateral femoral and popliteal pulses there are no palpable dp or pt pulses", "bony exposure", "negated"),
])
def test_a_denial_does_not_reach_across_a_long_unpunctuated_turn(text: str, phrase: str, expected: str) -> None:
    assert status(text, phrase) == expected


@pytest.mark.parametrize(("text", "phrase", "expected"), [
    ("i do n't have any chest pain .", "chest pain", "negated"),  # transcripts split contractions
    ("i used to smoke but i quit .", "smoke", "historical"),
    ("i had a hysterectomy in 1996 .", "hysterectomy", "historical"),
    ("He underwent appendectomy.", "appendectomy", "historical"),
    ("who in your family has had skin cancer ?", "skin cancer", "family"),
    ("we can consider a steroid injection .", "steroid injection", "hypothetical"),
    ("The risks include infection and bleeding.", "infection", "hypothetical"),
    ("risks including but not limited to infection", "infection", "hypothetical"),
    ("if it's not better , we'll get an mri .", "mri", "hypothetical"),
    ("Alcohol Use: None.\nTobacco Use: Non-smoker.", "Alcohol", "negated"),
    ("Tobacco Use: Non-smoker.\nPlan: walk daily.", "Tobacco", "negated"),
    ("your lungs sound nice and clear .", "lungs sound", "negated"),
    ("this appears to be a benign pituitary adenoma .", "pituitary adenoma", "possible"),
])
def test_spoken_and_note_cues(text: str, phrase: str, expected: str) -> None:
    assert status(text, phrase) == expected


def test_assertions_for_is_positional_and_checks_spans() -> None:
    text = "No fever. Cough."
    assert assertions_for(text, [(3, 8), (10, 15)]) == ["negated", "present"]
    assert assertions_for(text, []) == []
    with pytest.raises(ValueError):
        assertion_of(text, 5, 500)


def test_rules_load_and_version() -> None:
    rules = load_rules("phrase\tcategory\tdirection\tmax_scope\tsource\nno\tNEGATED\tforward\t3\tx\n")
    assert rules[0].max_scope == 3 and rules[0].direction == "forward"
    assert RULES_VERSION.split("-")[0].isdigit()


def _labelled(split: str) -> list[tuple[str, str]]:
    lines = [line for line in FIXTURE.read_text("utf-8").splitlines() if not line.startswith("#")]
    out = []
    for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE):
        if row["split"] == split:
            text = row["text"].replace("\\n", "\n")
            out.append((row["assertion"], assertion_of(text, int(row["start"]), int(row["end"]))))
    return out


# Floors set below the measured figures (benchmarks/assertion.py; see docs/concepts.md), so a
# regression of a few sentences fails while wording changes of the rules do not.
@pytest.mark.parametrize(("split", "floor"), [("dev", 0.93), ("test", 0.80)])
def test_labelled_set_accuracy(split: str, floor: float) -> None:
    pairs = _labelled(split)
    assert len(pairs) >= 40
    accuracy = sum(g == p for g, p in pairs) / len(pairs)
    assert accuracy >= floor


def _aci_pairs(split: str) -> list[tuple[str, str]]:
    import importlib.util
    import sys

    # loaded by path: "benchmarks" is also the name of an unrelated installed package
    spec = importlib.util.spec_from_file_location("assertion_benchmark", FIXTURE.parents[1] / "benchmarks" /
                                                  "assertion.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return [(e.gold, assertion_of(e.text, e.start, e.end)) for e in module.load_aci_examples() if e.split == split]


def _f1(pairs: list[tuple[str, str]], label: str) -> float:
    tp = sum(g == p == label for g, p in pairs)
    predicted, gold = sum(p == label for _, p in pairs), sum(g == label for g, _ in pairs)
    return 2 * tp / (predicted + gold) if predicted + gold else 0.0


# ACI-Bench findings in dialogues and notes (fixtures/assertion_aci.tsv), floors below the measured
# figures (README, validation table): the targets are historical F1 >= 0.75, negation >= 0.95.
@pytest.mark.parametrize(("split", "accuracy", "historical", "negated"),
                         [("dev", 0.95, 0.90, 0.95), ("test", 0.85, 0.75, 0.90)])
def test_aci_dialogue_set(split: str, accuracy: float, historical: float, negated: float) -> None:
    pairs = _aci_pairs(split)
    assert len(pairs) >= 70
    assert sum(g == p for g, p in pairs) / len(pairs) >= accuracy
    assert _f1(pairs, "historical") >= historical
    assert _f1(pairs, "negated") >= negated


def test_labelled_set_recall_per_class_on_dev() -> None:
    pairs = _labelled("dev")
    for label in ("negated", "possible", "historical", "family", "hypothetical", "present"):
        gold = [p for g, p in pairs if g == label]
        assert sum(p == label for p in gold) / len(gold) >= 0.8, label
