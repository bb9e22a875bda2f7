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

import itertools
import json
import math
import random
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from nlp.classify import Classification, Guess, Label, Thresholds, severity_of
from nlp.normalise import normalise

FORMAT = "gridline-classifier/1"
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "classifier.npz"
OUT_OF_SCOPE = "__out_of_scope__"
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

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(columns, values) of the text's TF-IDF vector: sublinear tf × idf, unit length (sklearn's
        ``TfidfVectorizer(sublinear_tf=True)``, which training uses; a test holds the two equal)."""
        counts = Counter(i for i in map(self.vocabulary.get, self.analyzer(text)) if i is not None)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        values = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))) * self.idf[columns]
        return columns, values / np.linalg.norm(values)


def _weighted_rows(matrix: sparse.csr_matrix, rows: np.ndarray, weights: np.ndarray, width: int) -> np.ndarray:
    """``weights @ matrix[rows]`` read straight from the CSR arrays: scipy's fancy row indexing builds a new
    matrix per call, which was half of a classification."""
    starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
    lengths = ends - starts
    if not lengths.sum():
        return np.zeros(width)
    picked = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    return np.bincount(
        matrix.indices[picked], weights=np.repeat(weights, lengths) * matrix.data[picked], minlength=width
    )


@dataclass
class TrainedClassifier:
    labels: tuple[Label, ...]  # in-scope labels; the model's classes are these, then OUT_OF_SCOPE
    words: tuple[str, ...]  # the domain dictionary given to jieba
    word_features: Features
    char_features: Features
    weights: sparse.csr_matrix  # classes × (word features, then char features)
    bias: np.ndarray
    temperature: float
    thresholds: Thresholds
    meta: dict[str, Any]

    # --- use ------------------------------------------------------------------------------------------------
    @cached_property
    def _columns(self) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        """The weights as features × classes, split at the word/char boundary: a message's few features pick their
        rows directly, with no transpose or stacking per call (that was 10 ms of a 12 ms classification)."""
        wt = self.weights.T.tocsr()
        split = len(self.word_features.vocabulary)
        return wt[:split], wt[split:]

    def margins(self, texts: Sequence[str]) -> np.ndarray:
        out = np.tile(self.bias.astype(np.float64), (len(texts), 1))
        classes = out.shape[1]
        for row, text in enumerate(texts):
            norm = normalise(text)
            for features, columns in zip((self.word_features, self.char_features), self._columns, strict=True):
                idx, values = features.vector(norm)
                if len(idx):
                    out[row] += _weighted_rows(columns, idx, values, classes)
        return out

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Rows of class probabilities (the labels in order, then out of scope)."""
        return _softmax(self.margins(texts), self.temperature)

    def classify(self, text: str) -> Classification:
        return self.answer(text, self.probabilities([text])[0])

    def classify_many(self, texts: Sequence[str]) -> list[Classification]:
        return [self.answer(t, p) for t, p in zip(texts, self.probabilities(texts), strict=True)]

    def answer(self, text: str, p: np.ndarray) -> Classification:
        """Top three 事项 with their probabilities; out of scope when "none of these" is likelier than the best
        事项 or the best is below the review threshold."""
        order = np.argsort(-p[:-1], kind="stable")[:3]
        top = tuple(Guess.of(self.labels[i], float(p[i])) for i in order)
        t = self.thresholds
        if p[-1] >= top[0].p or top[0].p < t.review:
            decision = "out_of_scope"
        elif top[0].p >= t.auto and top[0].p - top[1].p >= t.margin:
            decision = "auto"
        else:
            decision = "review"
        return Classification(text, top, decision, severity_of(normalise(text)))

    # --- file -----------------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the model; the same model gives the same bytes (fixed zip dates), so retraining shows in git only
        when something changed."""
        t = self.thresholds
        doc = {
            "format": FORMAT,
            "labels": [[lb.code, lb.name, lb.major, lb.component, list(lb.keywords)] for lb in self.labels],
            "words": list(self.words),
            "word_vocabulary": _terms(self.word_features.vocabulary),
            "char_vocabulary": _terms(self.char_features.vocabulary),
            "temperature": self.temperature,
            "thresholds": {"auto": t.auto, "review": t.review, "margin": t.margin},
            "meta": self.meta,
        }
        w = self.weights.tocsr()
        arrays = {
            "doc": np.frombuffer(json.dumps(doc, ensure_ascii=False, sort_keys=True).encode(), dtype=np.uint8),
            "w_data": w.data.astype(np.float32),
            "w_indices": w.indices.astype(np.int32),
            "w_indptr": w.indptr.astype(np.int32),
            "w_shape": np.array(w.shape, dtype=np.int64),
            "bias": self.bias.astype(np.float32),
            "word_idf": self.word_features.idf.astype(np.float32),
            "char_idf": self.char_features.idf.astype(np.float32),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with z.open(info, "w") as out:
                    np.lib.format.write_array(out, np.ascontiguousarray(array), allow_pickle=False)

    @classmethod
    def load(cls, path: Path, thresholds: Thresholds | None = None) -> TrainedClassifier:
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
        weights = sparse.csr_matrix(
            (arrays["w_data"], arrays["w_indices"], arrays["w_indptr"]), shape=tuple(arrays["w_shape"])
        )
        labels = tuple(Label(c, n, m, comp, tuple(k)) for c, n, m, comp, k in doc["labels"])
        return cls(
            labels, words, word_features, char_features, weights, arrays["bias"], doc["temperature"],
            thresholds or Thresholds(**doc["thresholds"]), doc["meta"],
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


def train(
    examples: Sequence[tuple[str, str | None]],
    labels: Sequence[Label],
    *,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    calibration_share: float = 0.1,
    c: float = 0.5,
    meta: dict[str, Any] | None = None,
) -> TrainedClassifier:
    """Fit on (text, code or None) pairs, deterministically for a seed. A share of the examples is held back to
    fit the temperature, then the model is refitted on everything with that temperature."""
    labels = tuple(sorted(labels, key=lambda lb: lb.code))
    index = {lb.code: i for i, lb in enumerate(labels)}
    unknown = sorted({code for _, code in examples if code is not None and code not in index})
    if unknown:
        raise ValueError(f"训练数据中的事项代码不在分类代码表中: {', '.join(unknown[:10])}")
    y = np.array([index[code] if code is not None else len(labels) for _, code in examples])
    texts = [normalise(text) for text, _ in examples]
    words = domain_words(labels)
    thresholds = thresholds or Thresholds()

    def fit(ids: Sequence[int]) -> TrainedClassifier:
        from sklearn.feature_extraction.text import TfidfVectorizer  # training only: serving needs no sklearn
        from sklearn.svm import LinearSVC

        chosen = [texts[i] for i in ids]
        blocks, features = [], []
        for analyzer in (Words(words), chars):
            vec = TfidfVectorizer(analyzer=analyzer, min_df=2, sublinear_tf=True, lowercase=False, dtype=np.float32)
            blocks.append(vec.fit_transform(chosen))
            features.append(Features(analyzer, dict(vec.vocabulary_), vec.idf_.astype(np.float32)))
        x = sparse.hstack(blocks, format="csr")
        svm = LinearSVC(C=c, random_state=seed, dual=True, max_iter=5000).fit(x, y[ids])
        w = np.zeros((len(labels) + 1, x.shape[1]), dtype=np.float32)
        b = np.full(len(labels) + 1, -10.0, dtype=np.float32)  # a class never seen in training never wins
        w[svm.classes_] = svm.coef_
        b[svm.classes_] = svm.intercept_
        w[np.abs(w) < PRUNE] = 0.0
        return TrainedClassifier(labels, words, *features, sparse.csr_matrix(w), b, 1.0, thresholds, {})

    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    cut = int(len(order) * calibration_share)
    held = sorted(order[:cut])
    model = fit(sorted(order[cut:]))
    temperature = _fit_temperature(model.margins([texts[i] for i in held]), y[held])
    model = fit(list(range(len(texts))))
    model.temperature = temperature
    model.meta = {"examples": len(texts), "out_of_scope": int((y == len(labels)).sum()),
                  "features": int(model.weights.shape[1]), **(meta or {})}  # fmt: skip
    return model
