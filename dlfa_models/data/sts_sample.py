"""The small multilingual STS sample shipped with the package (written for this project).

Sentences are "<subject> <predicate>." built from phrase tables in English, German,
Spanish and French; row i means the same in every language. Similarity (0–5) is
set by construction: the same subject and predicate (in either of two phrasings)
score 5, a related subject or predicate (same group) less, unrelated parts less
still. ``python -m dlfa_models.data.sts_sample`` rewrites ``sts_sample.csv`` beside it.
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

LANGS = ("en", "de", "es", "fr")
SAMPLE_PATH = Path(__file__).with_name("sts_sample.csv")

# (group, {lang: phrase})
SUBJECTS = [
    ("person", {"en": "A man", "de": "Ein Mann", "es": "Un hombre", "fr": "Un homme"}),
    ("person", {"en": "A woman", "de": "Eine Frau", "es": "Una mujer", "fr": "Une femme"}),
    ("person", {"en": "A boy", "de": "Ein Junge", "es": "Un niño", "fr": "Un garçon"}),
    ("person", {"en": "A girl", "de": "Ein Mädchen", "es": "Una niña", "fr": "Une fille"}),
    ("person", {"en": "An old man", "de": "Ein alter Mann", "es": "Un anciano", "fr": "Un vieil homme"}),
    ("animal", {"en": "A dog", "de": "Ein Hund", "es": "Un perro", "fr": "Un chien"}),
    ("animal", {"en": "A cat", "de": "Eine Katze", "es": "Un gato", "fr": "Un chat"}),
    ("animal", {"en": "A monkey", "de": "Ein Affe", "es": "Un mono", "fr": "Un singe"}),
]

# (group, {lang: (phrasing 1, phrasing 2)})
PREDICATES = [
    ("music", {"en": ("is playing the guitar", "plays a guitar"), "de": ("spielt Gitarre", "spielt auf einer Gitarre"),
               "es": ("está tocando la guitarra", "toca una guitarra"), "fr": ("joue de la guitare", "est en train de jouer de la guitare")}),
    ("music", {"en": ("is playing the piano", "plays a piano"), "de": ("spielt Klavier", "spielt auf einem Klavier"),
               "es": ("está tocando el piano", "toca un piano"), "fr": ("joue du piano", "est en train de jouer du piano")}),
    ("music", {"en": ("is singing a song", "sings a song"), "de": ("singt ein Lied", "singt gerade ein Lied"),
               "es": ("está cantando una canción", "canta una canción"), "fr": ("chante une chanson", "est en train de chanter une chanson")}),
    ("food", {"en": ("is eating an apple", "eats an apple"), "de": ("isst einen Apfel", "isst gerade einen Apfel"),
              "es": ("está comiendo una manzana", "come una manzana"), "fr": ("mange une pomme", "est en train de manger une pomme")}),
    ("food", {"en": ("is slicing bread", "cuts some bread"), "de": ("schneidet Brot", "schneidet gerade Brot"),
              "es": ("está cortando pan", "corta pan"), "fr": ("coupe du pain", "est en train de couper du pain")}),
    ("food", {"en": ("is cooking rice", "cooks some rice"), "de": ("kocht Reis", "kocht gerade Reis"),
              "es": ("está cocinando arroz", "cocina arroz"), "fr": ("cuisine du riz", "est en train de cuire du riz")}),
    ("sport", {"en": ("is riding a horse", "rides a horse"), "de": ("reitet ein Pferd", "reitet auf einem Pferd"),
               "es": ("está montando a caballo", "monta un caballo"), "fr": ("monte à cheval", "est en train de monter à cheval")}),
    ("sport", {"en": ("is swimming in a pool", "swims in a pool"), "de": ("schwimmt in einem Becken", "schwimmt im Schwimmbad"),
               "es": ("está nadando en una piscina", "nada en una piscina"), "fr": ("nage dans une piscine", "est en train de nager dans une piscine")}),
    ("sport", {"en": ("is running on the beach", "runs along the beach"), "de": ("läuft am Strand", "rennt am Strand entlang"),
               "es": ("está corriendo en la playa", "corre por la playa"), "fr": ("court sur la plage", "est en train de courir sur la plage")}),
    ("rest", {"en": ("is sleeping on a bed", "sleeps on a bed"), "de": ("schläft auf einem Bett", "schläft gerade im Bett"),
              "es": ("está durmiendo en una cama", "duerme en una cama"), "fr": ("dort sur un lit", "est en train de dormir sur un lit")}),
    ("rest", {"en": ("is reading a book", "reads a book"), "de": ("liest ein Buch", "liest gerade ein Buch"),
              "es": ("está leyendo un libro", "lee un libro"), "fr": ("lit un livre", "est en train de lire un livre")}),
    ("rest", {"en": ("is watching television", "watches TV"), "de": ("sieht fern", "schaut gerade Fernsehen"),
              "es": ("está viendo la televisión", "ve la tele"), "fr": ("regarde la télévision", "est en train de regarder la télé")}),
]

# similarity by (subject relation, predicate relation): same / related (same group) / other
SCORES = {
    ("same", "same"): 5.0, ("related", "same"): 3.6, ("other", "same"): 2.6,
    ("same", "related"): 2.4, ("related", "related"): 1.6, ("other", "related"): 1.0,
    ("same", "other"): 1.2, ("related", "other"): 0.6, ("other", "other"): 0.0,
}


def _relation(table, i: int, j: int) -> str:
    if i == j:
        return "same"
    return "related" if table[i][0] == table[j][0] else "other"


def _sentence(lang: str, subject: int, predicate: int, phrasing: int) -> str:
    return f"{SUBJECTS[subject][1][lang]} {PREDICATES[predicate][1][lang][phrasing]}."


def build_pairs(n_pairs: int, seed: int) -> list[tuple[int, int, int, int, int, int, float]]:
    """Index tuples (s1, p1, v1, s2, p2, v2, score), balanced over the nine relations."""
    rng = random.Random(seed)
    relations = list(SCORES)
    pairs = []
    while len(pairs) < n_pairs:
        want = relations[len(pairs) % len(relations)]
        s1, p1 = rng.randrange(len(SUBJECTS)), rng.randrange(len(PREDICATES))
        s2, p2 = rng.randrange(len(SUBJECTS)), rng.randrange(len(PREDICATES))
        if (_relation(SUBJECTS, s1, s2), _relation(PREDICATES, p1, p2)) != want:
            continue
        pairs.append((s1, p1, rng.randrange(2), s2, p2, rng.randrange(2), SCORES[want]))
    return pairs


def write_sample(path: Path = SAMPLE_PATH) -> None:
    """Columns: split, lang, sentence1, sentence2, similarity_score. English train; every language dev and test."""
    rows = []
    for split, n, seed in (("train", 270, 0), ("dev", 54, 1), ("test", 54, 2)):
        langs = ("en",) if split == "train" else LANGS
        for lang in langs:
            for s1, p1, v1, s2, p2, v2, score in build_pairs(n, seed):
                rows.append((split, lang, _sentence(lang, s1, p1, v1), _sentence(lang, s2, p2, v2), score))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("split", "lang", "sentence1", "sentence2", "similarity_score"))
        writer.writerows(rows)


if __name__ == "__main__":
    write_sample()
    print(f"wrote {SAMPLE_PATH}")
