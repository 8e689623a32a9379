"""A small statistical model of opt-out replies, trained from the corpus it ships with.

Rules name what they recognise, but no list of phrases is ever complete. The
model reads character n-grams (2 to 5 letters, within words: TF-IDF) of the
normalised reply and weighs them with a logistic regression, both from
scikit-learn, fitted on data/reasonable_means_corpus.tsv: the labelled
development corpus, shipped with the package. Nothing is downloaded and
nothing is stored: the model is trained the first time a process needs it
(a fraction of a second) and kept for the life of the process.

Scoring one reply does not go through scikit-learn's per-call machinery: the
fitted vocabulary, IDF weights and coefficients are folded into one weight
per n-gram, and a reply's probability is a dictionary sum, the same number
predict_proba() gives (a test holds the two together).
"""

from __future__ import annotations

import csv
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .normalise import normalise

CORPUS = Path(__file__).parent / "data" / "reasonable_means_corpus.tsv"

# Chosen by cross-validation on the development corpus (see the tests), not on any held-out set.
NGRAMS = (2, 5)
C = 10.0


@dataclass(frozen=True)
class Row:
    label: str  # "opt_out" or "other"
    language: str  # "en" or "es"
    text: str


def corpus_rows(path: Path = CORPUS) -> list[Row]:
    """The labelled replies of a corpus file (UTF-8, tab-separated, header label/language/text, no quoting)."""
    with path.open(encoding="utf-8", newline="") as f:
        return [
            Row(r["label"], r["language"], r["text"]) for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        ]


@dataclass(frozen=True)
class Model:
    """A fitted model folded into plain numbers: n-gram -> (idf, idf * coefficient)."""

    weights: dict[str, tuple[float, float]]
    intercept: float

    def probability(self, normalised: str) -> float:
        """P(opt-out) of an already normalised reply."""
        weights = self.weights
        counts: dict[str, int] = {}
        for gram in char_ngrams(normalised):
            if gram in weights:
                counts[gram] = counts.get(gram, 0) + 1
        norm = 0.0
        dot = 0.0
        for gram, count in counts.items():
            idf, weight = weights[gram]
            norm += (count * idf) ** 2
            dot += count * weight
        z = self.intercept + (dot / math.sqrt(norm) if norm else 0.0)
        return 1.0 / (1.0 + math.exp(-z)) if z > -500 else 0.0


def char_ngrams(text: str) -> list[str]:
    """scikit-learn's "char_wb" n-grams of `text`, in the same order and with the same repeats.

    Each whitespace-separated word is padded with one space either side; a
    padded word no longer than n gives itself once, and no longer n-grams.
    """
    low, high = NGRAMS
    grams: list[str] = []
    append = grams.append
    for word in text.split():
        padded = f" {word} "
        size = len(padded)
        for n in range(low, high + 1):
            if size <= n:
                append(padded)
                break
            for start in range(size - n + 1):
                append(padded[start : start + n])
    return grams


def fit_estimators(texts: list[str], labels: list[bool], *, c: float = C) -> tuple[Any, Any]:
    """scikit-learn's fitted TF-IDF vectorizer and logistic regression for normalised `texts`."""
    # Imported here, not at the top: a process that never reads a reply never pays for scikit-learn.
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, lowercase=False, dtype=np.float64)
    features = vectorizer.fit_transform(texts)
    classifier = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, solver="liblinear", random_state=0)
    # One thread: the problem is small, and a pool of threads on a busy machine made it 10 to 50 times slower.
    with threadpool_limits(limits=1):
        classifier.fit(features, np.asarray(labels))
    return vectorizer, classifier


def train(texts: list[str], labels: list[bool], *, c: float = C) -> Model:
    """A model fitted on normalised `texts` (True: an opt-out), folded into plain numbers."""
    vectorizer, classifier = fit_estimators(texts, labels, c=c)
    idf = vectorizer.idf_
    coef = classifier.coef_[0]
    weights = {gram: (float(idf[i]), float(idf[i] * coef[i])) for gram, i in vectorizer.vocabulary_.items()}
    return Model(weights, float(classifier.intercept_[0]))


def fit_rows(rows: Iterable[Row], *, c: float = C) -> Model:
    chosen = list(rows)
    return train([normalise(r.text) for r in chosen], [r.label == "opt_out" for r in chosen], c=c)


_model: list[Model] = []
_lock = threading.Lock()


def model() -> Model:
    """The model trained on the shipped corpus, trained once per process (thread-safe)."""
    if not _model:
        with _lock:
            if not _model:
                _model.append(fit_rows(corpus_rows()))
    return _model[0]


def warm_up() -> threading.Thread:
    """Train the model in the background, so that the first reply read need not wait for it.

    The web server calls this as it starts; a reply that arrives before the
    model is ready waits for it (model() holds the lock while training).
    """
    thread = threading.Thread(target=model, name="opt-out-model", daemon=True)
    thread.start()
    return thread
