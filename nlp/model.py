"""The trained classifier behind nlp's ``Classifier`` interface: TF-IDF over jieba words (with a domain dictionary)
and over characters, into one linear model per 管理事项 plus one for "not a city-management matter".

Why this shape: citizens' wording is open-ended but short, so character n-grams carry what jieba mis-splits (错别字,
homophones in hotline transcripts, 马葫芦盖 vs 井盖), while words carry meaning across the sentence. A linear SVM
is the strongest thing a 2-core CPU trains in a minute on ~20k sentences; its margins become probabilities by a
softmax whose temperature is fitted on a slice of the training data kept out of fitting (temperature scaling), so
``p`` means what it says and the thresholds can be read off in precision.

The file is an ``.npz`` holding arrays and one JSON document (no pickle: loading a model runs no code). Weights are
pruned to the ones that matter and kept sparse, which keeps the file small and loading fast.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from nlp import letters
from nlp.classify import Classification, Guess, Label, Scope, Thresholds, severity_of
from nlp.letters import FRAME
from nlp.normalise import normalise, without_fillers

FORMAT = "gridline-classifier/2"
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "classifier.npz"
OTHER = "other"  # the out-of-scope class of examples that name no topic
FAMILIES = ("svm", "logreg", "ensemble", "two_stage")
DEFAULT_FAMILY = "svm"  # the best on the held-out sets (python -m bench classify compares them all)
LOGREG_C, LOGREG_ITER = 20.0, 15  # few passes of saga: measured, more change no decision and cost minutes
SECONDARY_MIN = 0.6  # a sentence this sure of another 事项 makes it a letter's second problem
# A trained model says "out of scope" with its topics' mass; the review threshold only has to catch a text that no
# 事项 fits at all. Over the retrainings of issue 15, 0.1 was never worse than 0.3 on either held-out set and twice
# better: at 0.3 real reports whose p was split between two 事项 went to 12345 (a broken 井盖 of no named network on
# a cycle lane: 0.29 道路遗撒, 0.25 不明井盖). python -m bench classify shows the sweep for the shipped model.
REVIEW = 0.1
# Words citizens use that jieba's general dictionary splits apart; with the taxonomy's names and keywords they form
# the domain dictionary.
CITIZEN_WORDS = (
    "马葫芦", "马葫芦盖", "井盖子", "下水道盖", "小广告", "牛皮癣", "黑车", "游商", "占道", "黑灯瞎火", "摆摊", "摊贩",
    "乱停", "乱贴", "乱扔", "乱倒", "渣土车", "土方车", "撒漏", "烧烤摊", "油烟", "噪音", "扰民", "违建", "私搭乱建",
    "积水", "路灯", "垃圾桶", "垃圾箱", "满溢", "共享单车", "电瓶车", "电动车", "僵尸车", "窨井", "雨水井", "污水井",
    "下水道", "化粪池", "公厕", "厕所", "绿化带", "行道树", "断头路", "坑洼", "塌陷", "井盖",
)  # fmt: skip
PRUNE = 0.02  # weights below this (in absolute value) are dropped: measured to change no test decision


@cache
def _jieba(words: tuple[str, ...]):  # jieba has no type hints
    """One tokenizer per word list and process: jieba's dictionary (about a second) plus the domain words."""
    import jieba

    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    for word in words:
        tokenizer.add_word(word, freq=2000)
    return tokenizer


def domain_words(labels: Iterable[Label]) -> tuple[str, ...]:
    words = set(CITIZEN_WORDS)
    for label in labels:
        words.add(label.name)
        words.update(k for k in label.keywords if 2 <= len(k) <= 6)
    return tuple(sorted(words))


class Words:
    """The word analyzer: jieba over the normal form, single characters and punctuation left to the char n-grams,
    plus adjacent word pairs."""

    def __init__(self, words: tuple[str, ...]) -> None:
        self.words = words
        self.tokenizer: Any = None

    def __call__(self, text: str) -> list[str]:
        if self.tokenizer is None:
            self.tokenizer = _jieba(self.words)
        tokens = [w for w in self.tokenizer.lcut(text, HMM=False) if len(w) > 1 or w.isdigit()]
        return tokens + [a + "_" + b for a, b in itertools.pairwise(tokens)]


def chars(text: str) -> list[str]:
    """Character 1-, 2- and 3-grams (the normal form has no spaces)."""
    return [text[i : i + n] for n in (1, 2, 3) for i in range(len(text) - n + 1)]


@dataclass(frozen=True)
class Features:
    """One kind of feature: how text becomes terms, and each kept term's column and idf."""

    analyzer: Callable[[str], list[str]]
    vocabulary: dict[str, int]
    idf: np.ndarray

    def counts(self, text: str) -> Counter[int]:
        """How often each kept term occurs in the (normal form) text, by column."""
        return Counter(i for i in map(self.vocabulary.get, self.analyzer(text)) if i is not None)

    def tfidf(self, counts: Counter[int]) -> tuple[np.ndarray, np.ndarray]:
        """(columns, values) of the TF-IDF vector of these counts: sublinear tf × idf, unit length (sklearn's
        ``TfidfVectorizer(sublinear_tf=True)``, which training uses; a test holds the two equal)."""
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        values = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))) * self.idf[columns]
        return columns, values / np.linalg.norm(values)

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        return self.tfidf(self.counts(text))


Vector = tuple[np.ndarray, np.ndarray]  # (columns over word then char features, TF-IDF values)
Counts = tuple[Counter[int], Counter[int]]  # a text's word and char term counts


def _first_characters(sentences: Sequence[str], most: int) -> list[str]:
    """The first sentences up to ``most`` characters, and the last one."""
    chosen: list[str] = []
    for sentence in sentences[:-1]:
        if sum(map(len, chosen)) + len(sentence) > most:
            break
        chosen.append(sentence)
    return chosen + list(sentences[-1:])


@dataclass
class Head:
    """One linear model over the features: its rows are the classes (or, for a ``majors`` head, the 大类 plus "out
    of scope") and its margins become probabilities by a softmax at its own fitted temperature."""

    weights: sparse.csr_matrix  # rows × (word features, then char features)
    bias: np.ndarray
    temperature: float
    majors: tuple[str, ...] = ()  # a 大类 head's rows; empty for a head over the classes

    @cached_property
    def columns(self) -> sparse.csr_matrix:
        """The weights as features × rows, transposed once: per call that was 10 ms of a 12 ms classification."""
        return self.weights.T.tocsr()

    def margins(self, x: sparse.csr_matrix) -> np.ndarray:
        """Each row's margin for each of the head's rows."""
        return (x @ self.columns).toarray().astype(np.float64) + self.bias


@dataclass(frozen=True)
class Reading:
    """How a long text is read: above ``letter_min`` characters, the whole text, its title and its sentences (each
    weighted by how much it says about a problem rather than being the letter's frame) are scored and mixed."""

    letter_min: int = 120
    most: int = 700  # characters of sentences read: the first ones and the last
    whole: float = 0.45
    title: float = 0.25
    sentences: float = 0.3


@dataclass
class TrainedClassifier:
    labels: tuple[Label, ...]  # in-scope labels; the model's classes are these, then the out-of-scope topics
    topics: tuple[str, ...]  # out-of-scope classes: scope topics, OTHER and FRAME
    words: tuple[str, ...]  # the domain dictionary given to jieba
    word_features: Features
    char_features: Features
    heads: tuple[Head, ...]  # one or two over the classes (their probabilities averaged), or classes + 大类
    thresholds: Thresholds
    meta: dict[str, Any]
    reading: Reading | None = None  # None: every text is read whole
    scope: Scope | None = None  # the city's scope; None: every topic is out of scope, as trained

    # --- use ------------------------------------------------------------------------------------------------
    @property
    def family(self) -> str:
        return str(self.meta.get("family", "svm"))

    def _counts(self, norm: str) -> Counts:
        """The term counts of a text in the normal form, read without fillers as in training."""
        norm = without_fillers(norm)
        return self.word_features.counts(norm), self.char_features.counts(norm)

    def _vector(self, counts: Counts) -> Vector:
        (wi, wv), (ci, cv) = self.word_features.tfidf(counts[0]), self.char_features.tfidf(counts[1])
        return np.concatenate([wi, ci + len(self.word_features.vocabulary)]), np.concatenate([wv, cv])

    @cached_property
    def _major_of_class(self) -> np.ndarray:
        """For a two-stage model: each class's row in the 大类 head."""
        majors = self.heads[-1].majors
        return np.array([majors.index(lb.major) for lb in self.labels] + [len(majors) - 1] * len(self.topics))

    def _matrix(self, vectors: Sequence[Vector]) -> sparse.csr_matrix:
        """The vectors as the rows of one sparse matrix, so that each head scores them all in one product."""
        indptr = np.concatenate([[0], np.cumsum([len(columns) for columns, _ in vectors])])
        columns = np.concatenate([c for c, _ in vectors])
        values = np.concatenate([v for _, v in vectors])
        width = len(self.word_features.vocabulary) + len(self.char_features.vocabulary)
        return sparse.csr_matrix((values, columns, indptr), shape=(len(vectors), width))

    def _probabilities(self, vectors: Sequence[Vector]) -> np.ndarray:
        x = self._matrix(vectors)
        if not self.heads[-1].majors:
            return np.mean([_softmax(h.margins(x), h.temperature) for h in self.heads], axis=0)
        classes, majors = self.heads
        p_major = _softmax(majors.margins(x), majors.temperature)
        z = classes.margins(x) / classes.temperature
        group = self._major_of_class
        out = np.zeros_like(z)
        for g in range(p_major.shape[1]):  # P(class) = P(大类) × P(class | 大类), the softmax within each 大类
            cols = group == g
            e = np.exp(z[:, cols] - z[:, cols].max(axis=1, keepdims=True))
            out[:, cols] = p_major[:, [g]] * e / e.sum(axis=1, keepdims=True)
        return out

    def read(self, text: str) -> tuple[np.ndarray, tuple[int, float] | None]:
        """The text's class probabilities and, for a letter, a second problem it raises (class, p) if any.

        A letter's parts are tokenised once: the whole is the sum of its parts' counts (salutation and closing
        left out), and at most ``Reading.most`` characters of sentences are read, from the start and the last
        sentence (where the request is), so that a 2,000-character letter costs what one of about 1,000 does."""
        r = self.reading
        if r is None or len(text) <= r.letter_min:
            return self._probabilities([self._vector(self._counts(normalise(text)))])[0], None
        letter = letters.parts(text)
        chosen = _first_characters(letter.sentences, r.most) or [normalise(text)]
        title = [letter.title] if letter.title else []
        counts = [self._counts(part) for part in (*title, *chosen)]
        whole: Counts = (Counter(), Counter())
        for words, grams in counts:
            whole[0].update(words)
            whole[1].update(grams)
        p = self._probabilities([self._vector(c) for c in (whole, *counts)])
        p_whole, p_title, p_sentences = p[0], p[1 : 1 + len(title)], p[1 + len(title) :]
        frame = len(self.labels) + self.topics.index(FRAME) if FRAME in self.topics else None
        weight = 1.0 + 1e-6 - (p_sentences[:, frame] if frame is not None else np.zeros(len(p_sentences)))
        said = (weight[:, None] * p_sentences).sum(axis=0) / weight.sum()
        if frame is not None:
            said[frame] = 0.0
            said /= said.sum()
        parts = [(r.whole, p_whole), (r.title, p_title[0] if title else None), (r.sentences, said)]
        mixed = sum(w * q for w, q in parts if q is not None) / sum(w for w, q in parts if q is not None)
        return mixed, self._secondary(mixed, p_sentences)

    def _secondary(self, mixed: np.ndarray, p_sentences: np.ndarray) -> tuple[int, float] | None:
        """The best-supported other 事项 that some sentence is clearly about (p ≥ 0.6 there)."""
        n = len(self.labels)
        first = int(np.argmax(mixed))
        best = p_sentences[:, :n].max(axis=0)
        if first < n:
            best[first] = 0.0
        second = int(np.argmax(best))
        return (second, float(best[second])) if best[second] >= SECONDARY_MIN else None

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Rows of class probabilities (the labels in order, then the out-of-scope topics), as trained."""
        return np.array([self.read(t)[0] for t in texts])

    def classify(self, text: str) -> Classification:
        return self.answer(text, *self.read(text))

    def classify_many(self, texts: Sequence[str]) -> list[Classification]:
        return [self.classify(t) for t in texts]

    def answer(self, text: str, p: np.ndarray, secondary: tuple[int, float] | None = None) -> Classification:
        """Top three 事项 with their probabilities; out of scope when the topics together are likelier than the best
        事项 or the best is below the review threshold. Topics the city takes in add to their 事项 (or drop out)."""
        n = len(self.labels)
        p = p.copy()
        for i, key in enumerate(self.topics, n):
            topic = self.scope.topics.get(key) if self.scope else None
            if topic is not None and not topic.out:
                if topic.code in self._index:
                    p[self._index[topic.code]] += p[i]
                p[i] = 0.0
        p /= p.sum()
        order = np.argsort(-p[:n], kind="stable")[:3]
        top = tuple(Guess.of(self.labels[i], float(p[i])) for i in order)
        t = self.thresholds
        outside = float(p[n:].sum())
        if outside >= top[0].p or top[0].p < t.review:
            decision = "out_of_scope"
        elif top[0].p >= t.auto and top[0].p - top[1].p >= t.margin:
            decision = "auto"
        else:
            decision = "review"
        scope_key = reason = None
        if decision == "out_of_scope":
            best = int(np.argmax(p[n:]))
            key = self.topics[best]
            scope_key = key if key not in (FRAME, OTHER) and p[n + best] >= 0.5 * outside else None
            reason = (self.scope or Scope({})).reason(scope_key)
        second = Guess.of(self.labels[secondary[0]], secondary[1]) if secondary else None
        if second is not None and decision != "out_of_scope" and second.code == top[0].code:
            second = None
        return Classification(text, top, decision, severity_of(normalise(text)), scope_key, reason, second)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {lb.code: i for i, lb in enumerate(self.labels)}

    # --- file -----------------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the model; the same model gives the same bytes (fixed zip dates), so retraining shows in git only
        when something changed."""
        t = self.thresholds
        doc = {
            "format": FORMAT,
            "labels": [[lb.code, lb.name, lb.major, lb.component, list(lb.keywords)] for lb in self.labels],
            "topics": list(self.topics),
            "words": list(self.words),
            "word_vocabulary": _terms(self.word_features.vocabulary),
            "char_vocabulary": _terms(self.char_features.vocabulary),
            "heads": [{"temperature": h.temperature, "majors": list(h.majors)} for h in self.heads],
            "reading": dataclasses.asdict(self.reading) if self.reading else None,
            "thresholds": {"auto": t.auto, "review": t.review, "margin": t.margin},
            "meta": self.meta,
        }
        arrays = {
            "doc": np.frombuffer(json.dumps(doc, ensure_ascii=False, sort_keys=True).encode(), dtype=np.uint8),
            "word_idf": self.word_features.idf.astype(np.float32),
            "char_idf": self.char_features.idf.astype(np.float32),
        }
        for i, head in enumerate(self.heads):
            w = head.weights.tocsr()
            arrays |= {
                f"h{i}_data": w.data.astype(np.float32),
                f"h{i}_indices": w.indices.astype(np.int32),
                f"h{i}_indptr": w.indptr.astype(np.int32),
                f"h{i}_shape": np.array(w.shape, dtype=np.int64),
                f"h{i}_bias": head.bias.astype(np.float32),
            }
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with z.open(info, "w") as out:
                    np.lib.format.write_array(out, np.ascontiguousarray(array), allow_pickle=False)

    @classmethod
    def load(cls, path: Path, thresholds: Thresholds | None = None, scope: Scope | None = None) -> TrainedClassifier:
        """Read a model file; ``ModelError`` names what is wrong with it."""
        try:
            with np.load(path, allow_pickle=False) as z:
                doc = json.loads(bytes(z["doc"]).decode())
                arrays = {k: z[k] for k in z.files if k != "doc"}
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{path}: 不是可用的分类模型文件 ({exc})") from None
        if doc.get("format") != FORMAT:
            raise ModelError(f"{path}: 模型格式 {doc.get('format')!r}，本程序需要 {FORMAT}")
        words = tuple(doc["words"])
        word_features, char_features = (
            Features(analyzer, {term: i for i, term in enumerate(doc[f"{kind}_vocabulary"])}, arrays[f"{kind}_idf"])
            for analyzer, kind in ((Words(words), "word"), (chars, "char"))
        )
        heads = tuple(
            Head(
                sparse.csr_matrix(
                    (arrays[f"h{i}_data"], arrays[f"h{i}_indices"], arrays[f"h{i}_indptr"]),
                    shape=tuple(arrays[f"h{i}_shape"]),
                ),
                arrays[f"h{i}_bias"], h["temperature"], tuple(h["majors"]),
            )
            for i, h in enumerate(doc["heads"])
        )  # fmt: skip
        labels = tuple(Label(c, n, m, comp, tuple(k)) for c, n, m, comp, k in doc["labels"])
        reading = Reading(**doc["reading"]) if doc.get("reading") else None
        return cls(
            labels, tuple(doc["topics"]), words, word_features, char_features, heads,
            thresholds or Thresholds(**doc["thresholds"]), doc["meta"], reading, scope,
        )  # fmt: skip


class ModelError(ValueError):
    """A model file that cannot be used."""


def _terms(vocabulary: dict[str, int]) -> list[str]:
    terms = [""] * len(vocabulary)
    for term, i in vocabulary.items():
        terms[i] = term
    return terms


def _softmax(margins: np.ndarray, temperature: float) -> np.ndarray:
    z = margins / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _fit_temperature(margins: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of held-back examples (Guo et al., 2017)."""

    def nll(log_t: float) -> float:
        p = _softmax(margins, math.exp(log_t))
        return float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())

    from scipy.optimize import minimize_scalar  # training only

    return math.exp(minimize_scalar(nll, bounds=(-4.0, 3.0), method="bounded").x)


def _linear(family: str, c: float, seed: int, x: sparse.csr_matrix, y: np.ndarray, rows: int) -> Head:
    """One linear head fitted on (x, y) with ``rows`` classes, weights pruned; temperature 1 until calibrated."""
    from sklearn.exceptions import ConvergenceWarning  # training only: serving needs no sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    if family == "logreg":
        model = LogisticRegression(C=LOGREG_C, solver="saga", max_iter=LOGREG_ITER, tol=1e-3, random_state=seed)
    else:
        model = LinearSVC(C=c, random_state=seed, dual=True, max_iter=5000)
    with warnings.catch_warnings():  # saga's few passes are chosen, not a failure to converge
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    w = np.zeros((rows, x.shape[1]), dtype=np.float32)
    b = np.full(rows, -10.0, dtype=np.float32)  # a class never seen in training never wins
    coef = model.coef_ if len(model.classes_) > 2 else np.vstack([-model.coef_, model.coef_])
    w[model.classes_] = coef
    b[model.classes_] = model.intercept_ if len(model.classes_) > 2 else [-model.intercept_[0], model.intercept_[0]]
    w[np.abs(w) < PRUNE] = 0.0
    return Head(sparse.csr_matrix(w), b, 1.0)


def train(
    examples: Sequence[tuple[str, str | None]],
    labels: Sequence[Label],
    *,
    family: str = DEFAULT_FAMILY,
    reading: Reading | None = Reading(),
    thresholds: Thresholds | None = None,
    seed: int = 0,
    calibration_share: float = 0.1,
    c: float = 0.5,
    meta: dict[str, Any] | None = None,
) -> TrainedClassifier:
    """Fit on (text, 事项 code or scope topic) pairs (None: out of scope for no named reason), deterministically
    for a seed. A share of the examples is held back to fit each head's temperature, then the model is refitted on
    everything with those temperatures.

    Families: ``svm`` (one linear SVM per class), ``logreg`` (multinomial logistic regression), ``ensemble`` (the
    two, probabilities averaged), ``two_stage`` (the SVM's classes within a 大类, times a 大类 SVM)."""
    if family not in FAMILIES:
        raise ValueError(f"family 应为 {'、'.join(FAMILIES)} 之一")
    labels = tuple(sorted(labels, key=lambda lb: lb.code))
    index = {lb.code: i for i, lb in enumerate(labels)}
    keys = [OTHER if key is None else key for _, key in examples]
    topics = tuple(sorted({k for k in keys if k not in index} | {OTHER}))
    unknown = sorted(k for k in topics if k.isdigit())
    if unknown:
        raise ValueError(f"训练数据中的事项代码不在分类代码表中: {', '.join(unknown[:10])}")
    index |= {key: len(labels) + i for i, key in enumerate(topics)}
    y = np.array([index[k] for k in keys])
    texts = [normalise(text) for text, _ in examples]
    words = domain_words(labels)
    thresholds = thresholds or Thresholds(review=REVIEW)
    majors = (*sorted({lb.major for lb in labels}), "")
    major_y = np.array([majors.index(labels[i].major) if i < len(labels) else len(majors) - 1 for i in y])
    rows = len(labels) + len(topics)

    def fit(ids: Sequence[int]) -> TrainedClassifier:
        from sklearn.feature_extraction.text import TfidfVectorizer

        chosen = [without_fillers(texts[i]) for i in ids]  # as _counts reads a text when serving
        blocks, features = [], []
        for analyzer in (Words(words), chars):
            vec = TfidfVectorizer(analyzer=analyzer, min_df=2, sublinear_tf=True, lowercase=False, dtype=np.float32)
            blocks.append(vec.fit_transform(chosen))
            features.append(Features(analyzer, dict(vec.vocabulary_), vec.idf_.astype(np.float32)))
        x = sparse.hstack(blocks, format="csr")
        kinds = {"svm": ("svm",), "logreg": ("logreg",), "ensemble": ("svm", "logreg"), "two_stage": ("svm",)}
        heads = [_linear(kind, c, seed, x, y[ids], rows) for kind in kinds[family]]
        if family == "two_stage":
            major = _linear("svm", c, seed, x, major_y[ids], len(majors))
            heads.append(Head(major.weights, major.bias, 1.0, majors))
        return TrainedClassifier(labels, topics, words, *features, tuple(heads), thresholds, {}, reading)

    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    cut = int(len(order) * calibration_share)
    held = sorted(order[:cut])
    model = fit(sorted(order[cut:]))
    x = model._matrix([model._vector(model._counts(texts[i])) for i in held])
    temperatures = [
        _fit_temperature(h.margins(x), major_y[held] if h.majors else y[held]) for h in model.heads
    ]
    model = fit(list(range(len(texts))))
    for head, temperature in zip(model.heads, temperatures, strict=True):
        head.temperature = temperature
    model.meta = {"examples": len(texts), "out_of_scope": int((y >= len(labels)).sum()), "family": family,
                  "features": int(model.heads[0].weights.shape[1]), **(meta or {})}  # fmt: skip
    return model
