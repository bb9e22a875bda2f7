"""A long message read as a letter: its title, and its body cut into sentences with the salutation and the
closing taken off, so that the classifier can weigh each part (a title says in a line what the letter is about; a
history of "自2013年起…" or a "此致敬礼" says nothing of the problem)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nlp.normalise import normalise

FRAME = "frame"  # the class of a letter's frame sentences (greetings, history, requests …): no problem in them
TITLE_MAX = 40  # a first line longer than this is the body, not a title
SENTENCE_MIN = 6  # a shorter piece joins the sentence before it
SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])")
SALUTATION = re.compile(
    r"^(?:(?:尊敬|敬爱|亲爱)的[^，,：:！!。\n]{0,24}|[^，,：:！!。\n]{0,12}(?:领导|书记|市长|县长|区长|局长|主任|厅长|同志|网友|各位)们?)"
    r"[：:，,！!]*(?:(?:您|你)们?好|忙)?[！!，,。：:]*"
)
GREETING = re.compile(r"^(?:(?:您|你)们?好|你好|您忙)[！!，,。：:]*")
CLOSING = re.compile(r"(?:此致|敬礼|谢谢|感谢|盼复|望回复|期待回复|静候佳音|为谢)[^。！？!?]{0,12}[。！？!?]*$")


@dataclass(frozen=True)
class Parts:
    title: str | None
    sentences: tuple[str, ...]


def parts(text: str) -> Parts:
    """The title (a short first line) and the body's sentences, salutation and closing dropped, each in the normal
    form (``nlp.normalise``) that the classifier reads."""
    title, body = None, text.strip()
    first, newline, rest = body.partition("\n")
    if newline and rest.strip() and 0 < len(first.strip()) <= TITLE_MAX:
        title, body = normalise(first), rest
    body = "\n".join(normalise(line) for line in body.splitlines())  # line by line: a line ends a sentence
    body = GREETING.sub("", SALUTATION.sub("", body.strip(), count=1).lstrip(), count=1)
    sentences: list[str] = []
    for piece in SENTENCE_END.split(body):
        piece = piece.strip()
        if not piece:
            continue
        if sentences and len(piece) < SENTENCE_MIN:
            sentences[-1] += piece
        else:
            sentences.append(piece)
    while sentences:  # "此致敬礼！" goes; "望尽快处理，谢谢！" keeps its request
        kept = CLOSING.sub("", sentences[-1]).rstrip("，, ")
        if kept == sentences[-1]:
            break
        if kept:
            sentences[-1] = kept
        else:
            sentences.pop()
    return Parts(title, tuple(s for s in sentences if s))
