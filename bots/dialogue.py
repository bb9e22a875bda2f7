"""The one dialogue behind every chat channel, in Chinese: report a problem (description → 事项 → place → optional
photo → one confirmation → receipt number), ask about one's cases, hand over to a 受理员, cancel.

Channels turn their messages into an ``Inbound`` and show the ``Outbound`` answers; the dialogue knows nothing of
WeChat or Telegram. Its state per user is a JSON document in the ``conversation`` table, moved on by compare-and-set
(``version``), so any worker can take the next message and a restart forgets nothing. A turn may have to be run again
when another worker moved the conversation first; what it does outside the state is idempotent for that reason
(attachments are content-addressed, the report's channel_ref is the draft's id, the receipt marker has a dedup key).

The dialogue reaches core only through the intake (``submit``, the classifier, the geocoder) and the citizen's own
case views (``bots.citizen``).
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import unicodedata
import uuid
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from bots import citizen, storage, voice
from bots.privacy import mask
from core.attachments import AttachmentError, AttachmentStore
from core.config import Settings
from core.geocoder import GazetteerGeocoder, Located
from core.intake import BadReport, Incoming, Intake

log = logging.getLogger("gridline.bots")

HOTLINE = "12345"
MAX_TEXT = 1000
MAX_PHOTOS = 3
PHOTO_MAX_BYTES = 10 * 1024 * 1024
AUDIO_MAX_BYTES = 2 * 1024 * 1024
RATE_WINDOW_S = 60.0
RATE_MAX = 20
DRAFT_TTL_S = 2 * 3600
HINT_TTL_S = 10 * 60
CLEAR = 0.8  # a place found from text with this confidence is taken (the summary still shows it)
UNSURE = 0.5  # between UNSURE and CLEAR the citizen is asked to confirm it

YES = {"确认", "是", "是的", "对", "对的", "好", "好的", "提交", "确定", "ok", "嗯", "没错", "正确", "y", "yes", "可以"}
NO = {"否", "不是", "不对", "错了", "不", "no", "n", "重新", "不正确"}
SKIP = {"跳过", "没有", "不用", "无", "没有照片", "不需要", "skip", "不发了", "没照片"}
GREETINGS = {"你好", "您好", "在吗", "在不在", "hi", "hello", "喂", "哈喽", "嗨"}
ABUSE = ("傻逼", "煞笔", "傻b", "sb", "操你", "草你", "你妈", "妈的", "fuck", "shit", "去死", "滚蛋", "垃圾客服")
NUMBER = re.compile(r"(\d{12})")
COMMANDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("help", re.compile(r"^(?:/start|/help|帮助|help|菜单|\?|使用说明)$")),
    ("report", re.compile(r"^(?:/report|上报|我要反映|反映问题|我要上报|报事|随手拍|我要报事)$")),
    ("status", re.compile(r"^(?:/status|查询|查|进度|查进度|查询进度|查询编号)(\d{12})?$")),
    ("status", re.compile(r"^(\d{12})$")),
    ("mine", re.compile(r"^(?:我的反映|我的上报|我反映的问题|我的问题|/mine)$")),
    ("human", re.compile(r"^(?:人工|转人工|人工服务|客服|/human)$")),
    ("cancel", re.compile(r"^(?:取消|/cancel|放弃|不报了|算了|结束)$")),
)


class Deps(Protocol):
    """What the dialogue needs from the composition root (admin's Runtime has all of it)."""

    settings: Settings
    engine: Engine
    intake: Intake
    geocoder: GazetteerGeocoder
    attachments: AttachmentStore


@dataclass(frozen=True)
class Inbound:
    """One message from a citizen, channel-neutral. Several parts may come together (a photo with a caption)."""

    channel: str
    user: str
    ref: str = ""
    text: str = ""
    photo: bytes | None = None
    photo_type: str | None = None
    audio: bytes | None = None
    audio_type: str | None = None
    recognition: str = ""  # the channel's own transcript of the voice message (WeChat ``Recognition``)
    lon: float | None = None
    lat: float | None = None
    crs: str = "wgs84"
    label: str = ""  # the channel's name for a shared place
    hint: bool = False  # a position the client reported by itself: remembered, never answered
    unsupported: str = ""  # a message kind the dialogue cannot use (video, link …)
    contact: str = ""  # a phone number the citizen chose to share
    too_large: str = ""  # the channel refused to fetch a file over the limits: what it was
    problem: str = ""  # the channel could not fetch what was sent: a sentence for the citizen


@dataclass(frozen=True)
class Outbound:
    """One answer: text, quick-reply options, whether to offer location sharing, and a stored photo to show."""

    text: str
    options: tuple[str, ...] = ()
    ask_location: bool = False
    photo: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["options"] = list(self.options)
        return data

    @classmethod
    def of(cls, data: dict[str, Any]) -> Outbound:
        options = tuple(data.get("options", ()))
        return cls(data.get("text", ""), options, bool(data.get("ask_location")), data.get("photo"))


def normalise(text: str) -> str:
    """The citizen's words as they are kept: control and zero-width characters removed, trimmed."""
    return "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in "\n\t").strip()


def _key(text: str) -> str:
    """A command key: NFKC, lower case, no spaces or closing punctuation, Telegram's @botname dropped."""
    key = re.sub(r"@\w+", "", unicodedata.normalize("NFKC", text).lower())
    return re.sub(r"[\s。！!，,.~～]+", "", key)


@dataclass
class _Prepared:
    """The parts of an Inbound after storing media and transcribing voice (done once, before any retry)."""

    text: str = ""
    photo: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    transcribed: bool = False


class Dialogue:
    def __init__(self, deps: Deps, clock: Callable[[], datetime] = storage.now_utc) -> None:
        self.deps = deps
        self.engine = deps.engine
        self.clock = clock
        self._locks = [threading.Lock() for _ in range(64)]

    # --- entry ------------------------------------------------------------------------------------------------
    def handle(self, msg: Inbound) -> list[Outbound]:
        """Answer one message. Never raises for bad input; storage failures propagate (the channel then asks the
        citizen to send again, and its dedup claim is released)."""
        prepared = self._prepare(msg)
        lock = self._locks[zlib.crc32(f"{msg.channel}:{msg.user}".encode()) % len(self._locks)]
        with lock:
            for _ in range(10):
                at = self.clock()
                conv = storage.load_conversation(self.engine, msg.channel, msg.user, at)
                state = copy.deepcopy(conv.state or {})
                turn = _Turn(self, msg, prepared, state, at)
                replies = turn.run()
                mode = "handoff" if state.get("handoff") else "report" if state.get("draft") else "idle"
                if storage.save_conversation(self.engine, conv, state, mode, at):
                    return replies
        raise RuntimeError("conversation kept changing under this turn")

    def _prepare(self, msg: Inbound) -> _Prepared:
        out = _Prepared(text=normalise(msg.text))
        store = self.deps.attachments
        if msg.too_large:
            out.notes.append(f"{msg.too_large}太大了，无法接收。照片请小于 10 MB，语音请短于 60 秒。")
        if msg.problem:
            out.notes.append(msg.problem)
        if msg.photo is not None:
            if len(msg.photo) > PHOTO_MAX_BYTES:
                out.notes.append("照片太大了（上限 10 MB），请压缩后再发。")
            else:
                try:
                    stored = store.put(msg.photo, msg.photo_type)
                    if stored.kind != "photo":
                        raise AttachmentError("只接受照片")
                    out.photo = {"sha256": stored.sha256, "media_type": stored.media_type, "kind": "photo"}
                except AttachmentError as exc:
                    out.notes.append(f"这张照片无法接收：{exc}")
        if msg.audio is not None or msg.recognition:
            out.audio, heard = self._voice(msg, out)
            if heard:
                out.text = normalise(f"{heard} {out.text}".strip())
                out.transcribed = True
        return out

    def _voice(self, msg: Inbound, out: _Prepared) -> tuple[dict[str, Any] | None, str | None]:
        audio = msg.audio or b""
        if len(audio) > AUDIO_MAX_BYTES:
            out.notes.append("语音太长了，请用文字描述，或分几段说。")
            return None, None
        item = None
        if audio:
            try:
                stored = self.deps.attachments.put(audio, msg.audio_type)
                if stored.kind == "audio":
                    item = {"sha256": stored.sha256, "media_type": stored.media_type, "kind": "audio"}
            except AttachmentError:
                pass  # a voice we cannot keep may still have been recognised by the channel
        heard = normalise(msg.recognition) or None
        if heard is None and item is not None:
            transcriber = getattr(self.deps.intake.services, "transcriber", None)
            heard = voice.transcribe(audio, transcriber)
        if heard is None:
            out.notes.append("暂时无法识别这段语音，请发文字描述问题。")
        return item, heard

    def warm(self) -> None:
        """Build what the first message would otherwise wait for: the classifier and the geocoder's indexes."""
        try:
            self.classify("井盖没了")
            self.deps.geocoder.locate("人民路1号")
        except Exception as exc:  # an empty database: the first message will say so
            log.warning("chat dialogue not warmed up: %s: %s", type(exc).__name__, exc)

    # --- services the turn uses ---------------------------------------------------------------------------------
    def classify(self, text: str) -> dict[str, Any]:
        classifier = self.deps.intake.services.classifier
        if classifier is None or not text:
            return {"decision": "out_of_scope", "code": None, "name": "", "p": 0.0}
        result = classifier.classify(text)
        top = result.top[0] if result.top else None
        return {
            "decision": result.decision,
            "code": result.code,
            "name": top.name if top and result.code else "",
            "p": round(top.p, 3) if top else 0.0,
            "scope": result.scope,
            "scope_reason": result.scope_reason,
        }

    def place_from_text(self, text: str, vague: bool = False) -> dict[str, Any] | None:
        """What the geocoder makes of a text; below UNSURE only when ``vague`` is asked for (a bare road name)."""
        found = self.deps.geocoder.locate(text[:200])
        if not isinstance(found, Located) or (found.confidence < UNSURE and not vague):
            return None
        return _place(found, found.lon, found.lat, "wgs84", found.matched, "text")

    def place_from_coords(self, lon: float, lat: float, crs: str, label: str) -> dict[str, Any] | None:
        """The shared point, described by the nearest address; None when it lies in no grid cell of the city."""
        found = self.deps.geocoder.locate_point(lon, lat, crs)
        if not isinstance(found, Located) or found.grid is None:
            return None
        place = _place(found, lon, lat, crs, label.strip()[:200] or found.note or found.matched, "location")
        place["confidence"] = 1.0
        return place

    def submit(self, msg: Inbound, draft: dict[str, Any], at: datetime) -> tuple[str | None, int]:
        place = draft.get("place") or {}
        incoming = Incoming(
            channel=msg.channel,
            channel_ref=f"dlg-{draft['id']}",
            received_at=at,
            sender=msg.user,
            text=draft["text"][:MAX_TEXT],
            media=tuple(draft.get("photos", []) + draft.get("audio", [])),
            lon=place.get("lon"),
            lat=place.get("lat"),
            crs=place.get("crs", "wgs84"),
            address=(place.get("address") or "")[:200],
        )
        report, _created = self.deps.intake.submit(incoming)
        number = getattr(report, "case_number", None)
        if number is None and report.case_id is not None:
            number = citizen.case_number(self.engine, report.case_id)
        if number and report.case_id is not None:  # the receipt says it: the notifier need not announce the filing
            storage.enqueue(
                self.engine,
                [
                    {
                        "dedup_key": storage.event_key(report.case_id, 1, msg.channel, msg.user),
                        "channel": msg.channel,
                        "recipient": msg.user,
                        "kind": "receipt",
                        "case_id": report.case_id,
                        "payload": {"number": number},
                        "status": "sent",
                    }
                ],
            )
        log.info("report %s from %s on %s: case %s", report.id, mask(msg.user), msg.channel, number or "-")
        return number, report.id


def _place(found: Located, lon: float, lat: float, crs: str, address: str, source: str) -> dict[str, Any]:
    grid = found.grid
    return {
        "lon": lon,
        "lat": lat,
        "crs": crs,
        "address": address,
        "matched": found.matched,
        "confidence": round(found.confidence, 3),
        "source": source,
        "grid": {"code": grid.code, "name": grid.name, "street": grid.street, "community": grid.community}
        if grid
        else None,
    }


def _grid_text(place: dict[str, Any]) -> str:
    g = place.get("grid")
    if not g:
        return "不在已知单元网格内（由受理员确认）"
    return f"{g['street']}{g['community']} {g['name']}（{g['code']}）"


HELP = (
    "您好，这里是城市管理问题反映平台（数字城管）。\n"
    "直接用一句话说明问题和地点即可，例如“人民路88号门口井盖没了”，也可以发语音、照片和位置。\n"
    "发送“查询 编号”看办理进度，“我的反映”看最近的反映，“人工”转受理员，“取消”放弃正在填写的反映。"
)
OUT_OF_SCOPE = (
    f"您说的情况不在城市管理（市容环境、市政设施、街面秩序）的受理范围内，其他诉求请拨打 {HOTLINE} 市民服务热线。\n"
    "如果确实是城市管理问题，请换个说法具体描述，例如“人民路88号门口井盖没了”。"
)
OUT_OF_SCOPE_BECAUSE = (
    "您说的情况不在城市管理（市容环境、市政设施、街面秩序）的受理范围内：{reason}。\n"
    "如果确实是城市管理问题，请换个说法具体描述，例如“人民路88号门口井盖没了”。"
)
POLITE = "请文明交流。如需反映城市管理问题，请直接说明问题和地点，我们会尽快处理。"
ASK_PLACE = "问题在什么位置？请发送位置，或输入地址，例如“人民路88号”“人民路和解放路交叉口”“阳光小区东门”。"


class _Turn:
    """One message applied to one conversation state (a plain dict, changed in place)."""

    def __init__(self, dialogue: Dialogue, msg: Inbound, prepared: _Prepared, state: dict[str, Any], at: datetime):
        self.d = dialogue
        self.msg = msg
        self.p = prepared
        self.state = state
        self.at = at
        self.now = at.timestamp()
        self.out: list[Outbound] = []

    def say(self, text: str, **kw: Any) -> None:
        self.out.append(Outbound(text, **kw))

    # --- the turn ---------------------------------------------------------------------------------------------
    def run(self) -> list[Outbound]:
        msg, p = self.msg, self.p
        if msg.hint:
            if msg.lon is not None and msg.lat is not None:
                self.state["hint"] = {"lon": msg.lon, "lat": msg.lat, "crs": msg.crs, "at": self.now}
            return []
        if msg.contact:
            self.state["contact"] = normalise(msg.contact)[:32]
            self.say("已记下您的联系电话，只用于受理员回访，不会公开。")
        if not self._within_rate():
            return self.out
        self._expire_draft()
        if p.transcribed:
            self.say(f"语音识别为：“{p.text}”")
        for note in p.notes:
            self.say(note)
        if self.state.get("handoff"):
            return self._in_handoff()
        if msg.unsupported:
            self.say(f"暂不支持{msg.unsupported}，请发送文字、语音、照片或位置。")
            return self.out
        text = p.text
        if len(text) > MAX_TEXT:
            self.say(f"内容太长了（最多 {MAX_TEXT} 字），请简要说明问题和地点。")
            return self.out
        command, arg = self._command(text) if text else (None, None)
        if command:
            getattr(self, f"_cmd_{command}")(arg)
            return self.out
        draft = self.state.get("draft")
        changed = False
        if p.photo is not None:
            draft = self._draft()
            if len(draft["photos"]) < MAX_PHOTOS and p.photo not in draft["photos"]:
                draft["photos"].append(p.photo)
                self.say(f"已收到照片（共 {len(draft['photos'])} 张）。")
            elif p.photo not in draft["photos"]:
                self.say(f"照片最多 {MAX_PHOTOS} 张，这张没有加入。")
            changed = True
        if msg.lon is not None and msg.lat is not None:
            draft = self._draft()
            place = self.d.place_from_coords(msg.lon, msg.lat, msg.crs, normalise(msg.label))
            if place is None:
                self.say(
                    "这个位置不在本平台负责的城区范围内。"
                    f"其他地区的问题请拨打 {HOTLINE}；也可以重新发送位置或输入地址。"
                )
            else:
                draft["place"], draft["guess"] = place, None
                self.say(f"已收到位置：{place['address']}")
            changed = True
        if text:
            answered = not self._text(text)
            if p.audio is not None and p.transcribed and self.state.get("draft"):
                self.state["draft"]["audio"] = [p.audio]  # the voice itself goes with the report as evidence
            if answered:
                return self.out
            changed = True
        if not changed:
            if not self.out:
                self.say(HELP)
            return self.out
        self._advance()
        return self.out

    def _within_rate(self) -> bool:
        recent = [t for t in self.state.get("rate", []) if self.now - t < RATE_WINDOW_S]
        if len(recent) >= RATE_MAX:
            self.state["rate"] = recent
            if self.now - self.state.get("rate_warned", 0) >= RATE_WINDOW_S:
                self.state["rate_warned"] = self.now
                self.say("您发送得太频繁了，请一分钟后再试。")
            return False
        self.state["rate"] = [*recent, self.now]
        return True

    def _expire_draft(self) -> None:
        draft = self.state.get("draft")
        if draft and self.now - draft.get("touched", self.now) > DRAFT_TTL_S:
            self.state["draft"] = None
            self.state.pop("pending_text", None)
            self.say("上次没有提交的反映已超过 2 小时，已作废。")

    def _command(self, text: str) -> tuple[str | None, str | None]:
        key = _key(text)
        for name, pattern in COMMANDS:
            m = pattern.match(key)
            if m:
                return name, (m.group(1) if m.groups() else None)
        return None, None

    def _draft(self) -> dict[str, Any]:
        draft = self.state.get("draft")
        if draft is None:
            draft = {
                "id": uuid.uuid4().hex,
                "step": "describe",
                "text": "",
                "code": None,
                "name": "",
                "decision": "",
                "photos": [],
                "audio": [],
                "place": None,
                "guess": None,
                "photo_asked": False,
                "started": self.now,
            }
            self.state["draft"] = draft
        draft["touched"] = self.now
        return draft

    # --- text in context ----------------------------------------------------------------------------------------
    def _text(self, text: str) -> bool:
        """Apply a text to the draft; False when the turn is answered already and must not advance."""
        draft = self.state.get("draft")
        if draft is None:
            return self._new_problem(text)
        draft["touched"] = self.now
        step = draft.get("step")
        key = _key(text)
        if any(w in key for w in ABUSE) and self.d.classify(text)["decision"] == "out_of_scope":
            self.say(POLITE)
            return False
        if step == "new_problem":
            return self._answer_new_problem(key)
        if step == "describe":
            return self._describe(draft, text)
        if step == "confirm_place":
            if key in YES and draft.get("guess"):
                draft["place"], draft["guess"] = draft["guess"], None
                return True
            if key in NO:
                draft["guess"] = None
                draft["step"] = "place"
                self.say(ASK_PLACE, ask_location=True)
                return False
            return self._place_text(draft, text)
        if step == "place":
            return self._place_text(draft, text)
        if step == "photo" and (key in SKIP or key in YES or key in NO):
            draft["photo_asked"] = True
            return True
        if step == "confirm" and key in YES:
            self._submit()
            return False
        if step == "confirm" and key in NO:
            self.say("请直接发送要修改的内容：新的位置、地址、照片或补充说明；回复“取消”放弃这条反映。")
            return False
        return self._more(draft, text)

    def _new_problem(self, text: str) -> bool:
        key = _key(text)
        cls = self.d.classify(text)
        if cls["decision"] == "out_of_scope":
            if key in GREETINGS:
                self.say(HELP)
            elif any(w in key for w in ABUSE):
                self.say(POLITE)
            elif key in YES or key in NO or key in SKIP:
                self.say("目前没有正在填写的反映。" + HELP)
            elif cls.get("scope"):  # a topic the city does not take in: say which and where to go
                self.say(OUT_OF_SCOPE_BECAUSE.format(reason=cls["scope_reason"]))
            else:
                self.say(OUT_OF_SCOPE)
            return False
        draft = self._draft()
        self._set_description(draft, text, cls)
        return True

    def _describe(self, draft: dict[str, Any], text: str) -> bool:
        cls = self.d.classify(text)
        if cls["decision"] == "out_of_scope":
            if not draft.get("place"):
                place = self.d.place_from_text(text)
                if place is not None:  # a place first, the problem next
                    draft["place"] = place if place["confidence"] >= CLEAR else None
                    draft["guess"] = None if place["confidence"] >= CLEAR else place
                    return True
            self.say(
                "没能看出是什么问题。请用一句话描述，例如“井盖没了”“垃圾没人清”“占道摆摊”。"
                f"如不属于城市管理问题，请拨打 {HOTLINE}。"
            )
            return False
        self._set_description(draft, text, cls)
        return True

    def _set_description(self, draft: dict[str, Any], text: str, cls: dict[str, Any]) -> None:
        draft["text"] = text if not draft["text"] else f"{draft['text']}；{text}"
        draft["code"], draft["name"], draft["decision"] = cls["code"], cls["name"], cls["decision"]
        if not draft.get("place"):
            place = self.d.place_from_text(text)
            if place is not None and place["confidence"] >= CLEAR:
                draft["place"], draft["guess"] = place, None
            elif place is not None:
                draft["guess"] = place

    def _place_text(self, draft: dict[str, Any], text: str) -> bool:
        place = self.d.place_from_text(text, vague=True)
        if place is not None and place["confidence"] < UNSURE:
            self.say(
                f"“{place['matched']}”范围太大，请补充门牌号、路口或附近的标志性建筑，或直接发送位置。",
                ask_location=True,
            )
            return False
        if place is not None:
            place["address"] = text[:200] if place["source"] == "text" and len(text) <= 60 else place["matched"]
            if place["confidence"] >= CLEAR:
                draft["place"], draft["guess"] = place, None
            else:
                draft["guess"] = place
            return True
        cls = self.d.classify(text)
        if cls["decision"] != "out_of_scope" and cls["code"] == draft.get("code"):
            draft["text"] = f"{draft['text']}；{text}"
            self.say("已补充到问题描述。")
            return True
        self.say(
            f"没有找到“{text[:30]}”这个地点。请换个说法（门牌号、路口或附近的标志性建筑），或直接发送位置。",
            ask_location=True,
        )
        return False

    def _more(self, draft: dict[str, Any], text: str) -> bool:
        """A text while the draft is nearly done: a different problem, a new place, or more description."""
        cls = self.d.classify(text)
        if cls["decision"] != "out_of_scope" and draft.get("code") and cls["code"] != draft["code"]:
            self.state["pending_text"] = text
            draft["step"] = "new_problem"
            self.say(
                f"这像是另一个问题（{cls['name']}）。上一条反映（{draft['name'] or '未分类'}）还没有提交：\n"
                "回复“提交”先提交上一条，回复“放弃”放弃上一条，然后再处理新问题。",
                options=("提交", "放弃"),
            )
            return False
        if cls["decision"] == "out_of_scope":
            place = self.d.place_from_text(text)
            if place is not None and place["confidence"] >= CLEAR:
                place["address"] = text[:200] if len(text) <= 60 else place["matched"]
                draft["place"], draft["guess"] = place, None
                return True
            if len(_key(text)) <= 3:  # "嗯嗯", "不用": no description, just a word in passing
                self.say("请回复“确认”提交，回复“取消”放弃。", options=("确认", "取消"))
                return False
        draft["text"] = f"{draft['text']}；{text}" if draft["text"] else text
        if not draft.get("code") and cls["code"]:
            draft["code"], draft["name"], draft["decision"] = cls["code"], cls["name"], cls["decision"]
        self.say("已补充到问题描述。")
        return True

    def _answer_new_problem(self, key: str) -> bool:
        pending = self.state.pop("pending_text", "") or ""
        if key in {"提交", "提交上一条", *YES}:
            self._submit()
        elif key in {"放弃", "放弃上一条", "新问题", *NO}:
            self.state["draft"] = None
            self.say("已放弃上一条反映。")
        else:
            self.state["pending_text"] = pending
            self.say("请回复“提交”或“放弃”（针对上一条还没提交的反映）。", options=("提交", "放弃"))
            return False
        if pending and self._new_problem(pending):
            self.say("现在处理您的新问题。")
            self._advance()
        return False

    # --- what next --------------------------------------------------------------------------------------------
    def _advance(self) -> None:
        draft = self.state.get("draft")
        if draft is None:
            return
        if not draft["text"]:
            draft["step"] = "describe"
            self.say("请用一句话描述遇到的问题，例如“井盖没了”“垃圾没人清”。")
            return
        if draft.get("guess") and not draft.get("place"):
            draft["step"] = "confirm_place"
            guess = draft["guess"]
            self.say(
                f"问题是在“{guess['matched']}”附近吗（{_grid_text(guess)}）？回复“是”确认，或发送位置、重新输入地址。",
                options=("是", "不是"),
                ask_location=True,
            )
            return
        if not draft.get("place"):
            hint = self.state.get("hint")
            if hint and self.now - hint.get("at", 0) <= HINT_TTL_S:
                guess = self.d.place_from_coords(hint["lon"], hint["lat"], hint.get("crs", "wgs84"), "")
                if guess is not None:
                    guess["confidence"] = 0.6
                    draft["guess"] = guess
                    return self._advance()
            draft["step"] = "place"
            self.say(ASK_PLACE, ask_location=True)
            return
        if not draft["photos"] and not draft.get("photo_asked"):
            draft["step"] = "photo"
            draft["photo_asked"] = True
            self.say("方便的话请拍一张现场照片发来（可选），没有请回复“跳过”。", options=("跳过",))
            return
        draft["step"] = "confirm"
        self.say(self._summary(draft), options=("确认", "取消"))

    def _summary(self, draft: dict[str, Any]) -> str:
        place = draft["place"]
        matter = draft["name"] or "待受理员分类"
        if draft.get("decision") == "review":
            matter += "（待受理员确认）"
        lines = [
            "请核对您要反映的问题：",
            f"事项：{matter}",
            f"地点：{place['address'] or place['matched']}",
            f"网格：{_grid_text(place)}",
            f"描述：{draft['text']}",
            f"照片：{len(draft['photos'])} 张",
            "回复“确认”提交，回复“取消”放弃；也可以再发照片或位置来修改。",
        ]
        return "\n".join(lines)

    def _submit(self) -> None:
        draft = self.state["draft"]
        try:
            number, report_id = self.d.submit(self.msg, draft, self.at)
        except BadReport as exc:
            self.say(f"提交失败：{exc}。请修改后再回复“确认”。")
            return
        self.state["draft"] = None
        if number:
            self.state["last_case"] = number
            self.say(
                f"已登记，编号 {number}。\n"
                "接下来：受理员会尽快受理，核实立案后派给责任部门处置，处理进展会在这里通知您。\n"
                f"随时发送“查询 {number}”查看进度。"
            )
        else:
            self.say(f"已收到您的反映（登记号 R{report_id}），案卷编号生成后会在这里通知您。")

    # --- commands ---------------------------------------------------------------------------------------------
    def _cmd_help(self, _arg: str | None) -> None:
        self.say(HELP)

    def _cmd_report(self, _arg: str | None) -> None:
        draft = self.state.get("draft")
        if draft and draft.get("text"):
            self.say("您有一条反映还没提交。")
            self._advance()
            return
        self._draft()
        self._advance()

    def _cmd_status(self, number: str | None) -> None:
        if number is None:
            return self._cmd_mine(None)
        view = citizen.my_case(self.d.engine, self.msg.channel, self.msg.user, number)
        if view is None:
            self.say(f"没有找到您反映的编号为 {number} 的问题。只能查询本账号反映的问题；请核对编号。")
            return
        self.say(view.text())
        if view.after_photo:
            self.out.append(Outbound("处置后照片", photo=view.after_photo))

    def _cmd_mine(self, _arg: str | None) -> None:
        views = citizen.my_cases(self.d.engine, self.msg.channel, self.msg.user)
        if not views:
            self.say("您还没有通过本账号反映过问题。直接描述问题和地点即可反映。")
            return
        lines = ["您最近反映的问题：", *(v.line() for v in views), "发送“查询 编号”看详情。"]
        self.say("\n".join(lines))

    def _cmd_human(self, _arg: str | None) -> None:
        self.state["handoff"] = {"since": self.at.isoformat(), "messages": []}
        self.say(
            "已为您转接人工受理员（工作时间 8:30–17:30），请直接留言，受理员会在这里回复您。回复“取消”结束人工服务。"
        )

    def _cmd_cancel(self, _arg: str | None) -> None:
        if self.state.get("draft"):
            self.state["draft"] = None
            self.state.pop("pending_text", None)
            self.say("已取消这条反映。有新问题随时告诉我们。")
        else:
            self.say("目前没有正在填写的反映。")

    def _in_handoff(self) -> list[Outbound]:
        text = self.p.text
        if text and self._command(text)[0] == "cancel":
            self.state["handoff"] = None
            self.say("已结束人工服务。")
            self._advance()  # a draft left before the hand-over is still there: ask for what it lacks
            return self.out
        entry: dict[str, Any] = {"at": self.at.isoformat()}
        if text:
            entry["text"] = text[:MAX_TEXT]
        if self.p.photo:
            entry["photo"] = self.p.photo["sha256"]
        if self.msg.lon is not None:
            entry["location"] = [self.msg.lon, self.msg.lat, self.msg.crs]
        messages = self.state["handoff"].setdefault("messages", [])
        messages.append(entry)
        del messages[:-30]
        self.say("已转达受理员，请稍候。回复“取消”结束人工服务。")
        return self.out


def waiting_handoffs(engine: Engine) -> list[dict[str, Any]]:
    """The 受理员 queue: conversations handed over, oldest first, with what the citizens wrote (user ids masked)."""
    queue = [
        {
            "conversation": row.id,
            "channel": row.channel,
            "user": mask(row.user_ref),
            "since": (row.state.get("handoff") or {}).get("since"),
            "messages": (row.state.get("handoff") or {}).get("messages", []),
        }
        for row in storage.handoffs(engine)
    ]
    return sorted(queue, key=lambda q: q["since"] or "")


def operator_reply(engine: Engine, conversation_id: int, text: str, operator: str) -> bool:
    """A 受理员's answer to a handed-over conversation, sent through the outbox on the citizen's channel."""
    found = storage.conversation_by_id(engine, conversation_id)
    if found is None:
        return False
    channel, user = found
    key = f"op:{conversation_id}:{uuid.uuid4().hex}"
    storage.enqueue(
        engine,
        [{"dedup_key": key, "channel": channel, "recipient": user, "kind": "reply",
          "payload": {"replies": [{"text": f"受理员{operator}：{text}"}]}}],
    )  # fmt: skip
    return True
