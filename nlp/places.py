"""Place phrases: what part of a Chinese description names a road, a door plate, a crossing or a landmark.

Only the grammar lives here (CJ/T 215 / GB/T 37149 address parts: 街巷 + 门牌, 路口, 标志物 + 方位); which
roads and landmarks exist is the gazetteer's business, so every part found is a candidate to be matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nlp.normalise import SPOKEN_FILLERS, normalise

ROAD_SUFFIX = r"(?:大道|大街|公路|胡同|路|街|巷|弄|道)"
NAME_CHARS = r"[\u4e00-\u9fa5A-Za-z0-9·]"
ROAD = rf"{NAME_CHARS}{{1,12}}?{ROAD_SUFFIX}"
NUMBER = r"\d+(?:[-－之]\d+)?"
FILLERS = (  # a caller's fillers, and the words around a place that name no part of it
    *SPOKEN_FILLERS,
    "这边",
    "那边",
    "这里",
    "那里",
    "位置",
    "地方",
    "在",
    "位于",
    "我在",
    "我们",
    "的",
)
PARTS = (
    "东门",
    "西门",
    "南门",
    "北门",
    "东北门",
    "西北门",
    "东南门",
    "西南门",
    "正门",
    "大门",
    "后门",
    "侧门",
    "门口",
    "入口",
    "出口",
)
RELATIONS = (
    "斜对面",
    "对面",
    "附近",
    "旁边",
    "边上",
    "隔壁",
    "周边",
    "周围",
    "东侧",
    "西侧",
    "南侧",
    "北侧",
    "前面",
    "后面",
    "楼下",
    "里面",
    "内",
    "外",
)

DOOR_RE = re.compile(rf"(?P<road>{ROAD})(?P<number>{NUMBER})号")
CROSSING_WORD = r"(?:十字路口|丁字路口|交叉路口|交叉口|交汇处|交口|路口|口)"
CROSS_RE = re.compile(
    rf"(?P<a>{ROAD})(?:(?:和|与|跟|同|、|/|交)(?P<b>{ROAD})(?:的)?{CROSSING_WORD}?|(?P<c>{ROAD}){CROSSING_WORD})"
)
ROAD_RE = re.compile(ROAD)
@dataclass(frozen=True)
class PlacePhrase:
    """The parts of one place description; empty strings where a part is absent."""

    text: str
    road: str = ""
    number: str = ""
    cross_road: str = ""
    landmark: str = ""
    part: str = ""
    relation: str = ""

    @property
    def kind(self) -> str:
        if self.road and self.number:
            return "door"
        if self.road and self.cross_road:
            return "crossing"
        if self.landmark:
            return "landmark"
        if self.road:
            return "road"
        return "none"


def strip_fillers(text: str) -> str:
    for word in FILLERS:
        text = text.replace(word, "")
    return text


def _trailing(text: str, words: tuple[str, ...]) -> tuple[str, str]:
    for word in sorted(words, key=len, reverse=True):
        if text.endswith(word) and len(text) > len(word):
            return text[: -len(word)], word
    return text, ""


def parse(text: str) -> PlacePhrase:
    """Split a place description into road, number, crossing road, landmark, part (东门…) and relation (对面…)."""
    norm = normalise(text)
    if m := DOOR_RE.search(norm):
        number = re.sub(r"[－之]", "-", m["number"])
        tail = norm[m.end() :]
        relation = next((w for w in sorted(RELATIONS, key=len, reverse=True) if tail.startswith(w)), "")
        return PlacePhrase(norm, road=m["road"], number=number, relation=relation)
    if m := CROSS_RE.search(norm):
        return PlacePhrase(norm, road=m["a"], cross_road=m["b"] or m["c"])
    rest = strip_fillers(norm)
    rest, relation = _trailing(rest, RELATIONS)
    rest, part = _trailing(rest, PARTS)
    if not rest:
        return PlacePhrase(norm)
    if ROAD_RE.fullmatch(rest):
        return PlacePhrase(norm, road=rest, part=part, relation=relation)
    return PlacePhrase(norm, landmark=rest, part=part, relation=relation)


def split_door(address: str) -> tuple[str, str]:
    """(road, number) of a door-plate address such as 百井坊巷46-1号, or ("", "") when it is not one."""
    m = DOOR_RE.fullmatch(normalise(address))
    if not m:
        return "", ""
    return m["road"], re.sub(r"[－之]", "-", m["number"])


# --- find_place: the place phrase inside a whole message ----------------------------------------------------------
# A message says where before or after what, and names have no delimiters: a name's left edge is where the last
# word that cannot be part of a name ends (a pronoun, a filler, a reporting verb, a time, a complaint word) or where
# the writer put a space.

_BOUNDARY_WORDS = (
    *(w for w in FILLERS if len(w) > 1),
    *(w for w in RELATIONS if len(w) > 1),
    *("你好", "您好", "反映", "投诉", "举报", "报告", "求助", "咨询", "请问", "麻烦", "谢谢", "关于", "一下", "一个"),
    *("一堆", "一些", "一直", "一半", "好多", "很多", "许多", "到处", "还是", "但是", "可是", "然后", "因为", "所以"),
    *("而且", "现在", "今天", "昨天", "明天", "刚才", "刚刚", "晚上", "早上", "中午", "下午", "上午", "半夜", "凌晨"),
    *("每天", "天天", "时候", "近期", "最近", "近日", "以后", "之后", "过后", "以前", "之前", "下雨", "下雪", "刮风"),
    *("路过", "经过", "看到", "看见", "发现", "上面", "下面", "这儿", "那儿", "居住", "居民", "本人", "师傅", "城管"),
    *("热线", "问题", "情况", "上班", "下班", "上学", "放学", "回家", "出门", "孩子", "小区", "门口", "马路", "道路"),
    *("路边", "路旁", "街边", "什么", "建议", "加强", "要求", "整治", "清理", "处理", "直接", "开始", "形成"),
    *("变成", "靠近", "接近", "垃圾", "杂物", "井盖", "路灯", "污水", "积水", "噪音", "油烟", "广告", "摊贩", "小贩"),
    *("车辆", "树枝", "渣土", "施工", "装修", "停车", "占道", "有人", "开上", "开到", "开进", "昨夜", "每次", "一座"),
    *("规划", "明年", "今年", "去年", "朝向", "下大雨", "大雨", "路上", "街上"),
)
_BOUNDARY_CHARS = (
    "了的在是有我你他她它您咱俺们这那哪个几就也还又再刚已没不别被把给让到从往去过说看叫要想请住对至着跟堆条段起"
    "吗呢吧啊呀嗯呃喂哦噢哈嘛啦坏满脏臭乱堵破漏吵掉亮多线坐乘搭换"
)
_BOUNDARY_RE = re.compile(
    "|".join(sorted(set(_BOUNDARY_WORDS), key=len, reverse=True))
    + rf"|[{_BOUNDARY_CHARS}]|\d+(?:年|月|日|点|分|辆|个|根|盏|条|只|家|天)"
)

# Names that are no name: kinds of way (人行道, 步行街, 一条路), kinds of place (社区医院, 大型超市).
_GENERIC_NAMES = frozenset(
    (
        *("商业", "美食", "小吃", "高速", "大马", "小马", "柏油", "水泥", "石子", "泥巴", "乡间", "乡村", "村里"),
        *("背街", "主干", "绿化", "健身", "地下", "城中", "新农", "社区", "景区"),
    )
)
# …nor is anything ending in these (非机动车道, 由私立转为公办学校).
_GENERIC_ENDS = (
    *("人行", "下水", "排水", "步行", "机动", "市政", "公办", "私立", "公立", "民办", "室内", "大型", "老旧", "废品"),
    *("一条", "整条", "半条", "几家", "一家", "十字", "丁字", "立交", "消防", "应急"),
)
_SINGLE_GENERIC = frozenset("大小新老本该某各此")
_ADMIN_SINGLE = frozenset("市省县区")
# A road name does not end in a verb or a kind word: 跑路, 让路, 铁路, 岔路, 电路 …
_NOT_ROAD_END = frozenset("跑走修问让挡拦占堵封绕赶半铁岔弯套思电网道马向")
_NUMBERED_MA = re.compile(r"[一二三四五六七八九十\d]+马")  # 二马路 is a name, 走马路 is not
# 道 alone is mostly a kind of way (人行道, 盲道, 车道); only 大道 and 道 with a door number or a crossing count.
_ROAD_TOKEN_RE = re.compile(
    rf"(?P<name>{NAME_CHARS}{{1,12}}?)(?P<suffix>大道|大街|公路|胡同|路|街|巷|弄|道(?![路街巷]))"
)
# Words after 路 that make it no road: 路灯, 路面, 路况 …
_ROAD_COMPOUND = ("灯", "面", "牌", "况", "障", "费", "由", "径", "程", "途", "基", "肩", "沿石")
_LANDMARK_SUFFIXES = (
    *("地铁站", "地铁口", "公交站", "公交车站", "公交站台", "火车站", "高铁站", "长途汽车站", "汽车站", "客运站"),
    *("加油站", "停车场", "菜市场", "农贸市场", "市场", "菜场", "超市", "商场", "商城", "购物中心", "广场", "公园"),
    *("医院", "卫生院", "诊所", "药店", "学校", "中学", "小学", "幼儿园", "大学", "学院", "小区", "花园", "家园"),
    *("新村", "公寓", "苑", "大厦", "大楼", "中心", "银行", "酒店", "宾馆", "饭店", "电影院", "体育馆", "图书馆"),
    *("博物馆", "文化馆", "科技馆", "美术馆", "纪念馆", "派出所", "社区", "书店", "邮局", "电视台", "大桥", "隧道"),
    *("高架", "高架桥", "立交桥", "车站"),
)
# Landmarks a city has one of, so they need no name.
_UNIQUE_LANDMARKS = frozenset(("火车站", "高铁站", "长途汽车站", "汽车站", "客运站"))
# Kind words that are also a name when another kind follows: 花园小区, 新村菜场, 中心医院.
_NAME_LIKE_KINDS = ("花园", "家园", "新村", "中心")
_LANDMARK_KIND = (
    "(?:"
    + "|".join(sorted(_LANDMARK_SUFFIXES, key=len, reverse=True))
    + r"|村(?![民委里村])|村(?=村[民委])|(?<=[门路街桥口村园])站(?![在着起了住岗成立]))"
)
_LANDMARK_RE = re.compile(rf"{_LANDMARK_KIND}+")
_NAME_CHAR_RE = re.compile(NAME_CHARS)
_CJK_RE = re.compile(r"[\u4e00-\u9fa5]")
_SPACE_RE = re.compile(r"\S\s+\S")
_SCHOOL_RE = re.compile(r"(?:市|县|区)?[一二三四五六七八九十\d]{1,3}中(?![午间心途央国华旬断文学])")

_MORE_RELATIONS = (
    *("下面", "上面", "底下", "门前", "门外", "外面", "外头", "后边", "前边", "左边", "右边", "里边", "外边"),
)
_STOP = r"(?=$|[的有那这是就在,，。.!！?？;；、:：)）])"
_RELATION = (
    "(?:"
    + "|".join(sorted({*RELATIONS, *_MORE_RELATIONS} - {"内", "外"}, key=len, reverse=True))
    + rf"|[东西南北](?:边|面|侧|头)|(?<=楼)下|[内外里边前后旁]{_STOP})"
)
_PART = (
    "(?:"
    + "|".join(sorted({*PARTS, "出站口", "进站口", "村口", "桥头"}, key=len, reverse=True))
    + r"|[A-Za-z\d]{1,2}号?(?:出入口|出口|入口|口)|(?<=村)口)"
)
_BUILDING = r"(?:\d+(?:号楼|栋|幢|单元|号|楼|期|区)|[一二三四五六七八九十]+[期区])"
_LANDMARK_TAIL_RE = re.compile(rf"{_BUILDING}*(?P<part>{_PART})?(?P<relation>{_RELATION})?")
_DOOR_TAIL_RE = re.compile(rf"{NUMBER}号{_RELATION}?")
_CROSSING_TAIL_RE = re.compile(
    rf"(?P<filler>的|那个|这个)?(?:十字路口|丁字路口|交叉路口|交叉口|交汇处|交汇口|交界处|交口|路口|口(?![腔子罩袋号味]))"
    rf"(?:[东西南北]{{1,2}}角|往[东西南北](?:\d+米|\d*点|一些|一段)?|{_RELATION})?"
)
_ROAD_TAIL_RE = re.compile(
    rf"(?:[东西南北中]段|那段|这段|一段|路段|段|一带|沿线|两侧|两边|辅路|主路|辅道|{_RELATION})?"
)
_STRETCH_TAIL_RE = re.compile(r"(?:那段|这段|一段|路段|段|那边|这边|那块|一带|附近)?")
_HE_NAMES = ("和平", "和谐", "和睦", "和美", "和顺", "和兴", "和合", "和园", "和苑", "和家")
_CONNECTORS = ("和", "与", "跟", "同", "及", "、", "/", "交")
_STRETCH_WORDS = ("靠近", "接近", "近", "至", "到")  # 建设路靠近人民路那段, 人民路至胜利路段
_LEAD_FILLER_RE = re.compile(r"(?:上|边上|边)?(?:的|那个|这个|那家|这家)?$")

# "Most specific wins": door > crossing of two roads > road + 口 > landmark + gate/side > landmark > stretch > road.
_DOOR, _CROSSING, _ROAD_CORNER, _LANDMARK_PART, _LANDMARK, _ROAD_SIDE, _ROAD = 7, 6, 5, 4, 3, 2, 1


@dataclass(frozen=True)
class _Road:
    start: int  # where the name starts once trimmed
    raw_start: int  # where the token match started
    end: int
    weak: bool  # bare 道: only a door number or a crossing makes it a road


def _left_edge(norm: str, start: int, end: int, gaps: frozenset[int]) -> int:
    """Where a name in norm[start:end] really starts: after the last boundary word or space inside it."""
    edge = max((g for g in gaps if start < g <= end), default=start)
    for i in range(start, end):
        if m := _BOUNDARY_RE.match(norm, i, end):
            edge = max(edge, m.end())
    if end - edge > 2 and norm[edge] in "和与及" and not norm.startswith(_HE_NAMES, edge):
        edge += 1  # 图书馆和青少年活动中心; 和平路, 和谐路 keep their 和
    return edge


def _is_name(name: str, suffix: str) -> bool:
    if len(name) < 2:  # 市图书馆, 翠苑; never 小区 or 新超市
        if name in _ADMIN_SINGLE:
            return True
        return suffix.startswith("苑") and name not in _SINGLE_GENERIC and "\u4e00" <= name <= "\u9fa5"
    if name in _GENERIC_NAMES or name.endswith(_GENERIC_ENDS) or "垃圾" in name or name[-1] in "车通":
        return False
    return _CJK_RE.search(name) is not None


def _gaps(text: str, norm: str) -> frozenset[int]:
    """Positions in norm where the writer put a space ("卖菜 锦华路那段"), when they can be told."""
    if not _SPACE_RE.search(text):
        return frozenset()
    marked = normalise("\x01".join(text.split()))
    if marked.replace("\x01", "") != norm:
        return frozenset()
    return frozenset(i - n for n, i in enumerate(i for i, ch in enumerate(marked) if ch == "\x01"))


def _roads(norm: str, gaps: frozenset[int]) -> list[_Road]:
    """Road tokens whose trimmed name is a real name (2+ characters, not 马路/人行道/这条路/跑路 …)."""
    found = []
    for m in _ROAD_TOKEN_RE.finditer(norm):
        suffix, end = m["suffix"], m.end()
        start = _left_edge(norm, m.start(), m.start("suffix"), gaps)
        inner = norm.rfind("路", start, m.start("suffix") - 2)  # 解放路人民路88号: the last road is the one
        start = max(start, inner + 1)
        name = norm[start : m.start("suffix")]
        if len(name) < 2 or not _is_name(name, suffix):
            continue
        if name[-1] in _NOT_ROAD_END and not _NUMBERED_MA.fullmatch(name):
            continue
        if suffix == "路" and norm.startswith(_ROAD_COMPOUND, end):
            continue  # 树上和路灯杆: 路灯 is the thing; a road's own 路灯/路面 is written 人民路路灯
        if suffix == "弄" and not (name[-1].isdigit() or norm[end : end + 1].isdigit()):
            continue  # 弄 is mostly the verb (弄坏了); a lane is 88弄 or 弄 and its number
        found.append(_Road(start, m.start(), end, weak=suffix == "道"))
    return found


def _road_spans(norm: str, roads: list[_Road]) -> list[tuple[int, int, int]]:
    """(rank, start, end) of door plates, crossings and roads with their side or stretch."""
    spans = []
    by_raw_start = {r.raw_start: r for r in roads}
    for road in roads:
        if m := _DOOR_TAIL_RE.match(norm, road.end):
            spans.append((_DOOR, road.start, m.end()))
            continue
        other = by_raw_start.get(road.end)
        if other is not None:
            joint = norm[road.end : other.start]
            if joint in _STRETCH_WORDS and not road.weak and not other.weak:
                spans.append((_ROAD_SIDE, road.start, _STRETCH_TAIL_RE.match(norm, other.end).end()))
                continue
            if joint in ("", *_CONNECTORS) and (m := _CROSSING_TAIL_RE.match(norm, other.end)):
                spans.append((_CROSSING, road.start, m.end()))
                continue
        m = _CROSSING_TAIL_RE.match(norm, road.end)
        if m and not m["filler"]:
            spans.append((_ROAD_CORNER, road.start, m.end()))
        elif not road.weak:
            end = _ROAD_TAIL_RE.match(norm, road.end).end()
            spans.append((_ROAD_SIDE if end > road.end else _ROAD, road.start, end))
    return spans


def _landmark_spans(norm: str, roads: list[_Road], gaps: frozenset[int]) -> list[tuple[int, int, int]]:
    """(rank, start, end) of named landmarks with their building, gate and side; a nameless one counts only when a
    road names it (淮河路那个电影院) or the city has just one (火车站)."""
    spans = []
    road_ends = {r.end: r for r in roads if not r.weak}
    taken = 0
    for m in _LANDMARK_RE.finditer(norm):
        suffix, kind_start = m.group(), m.start()
        raw_start = kind_start  # the name is the name characters before the kind word, at most 12
        while raw_start > max(taken, kind_start - 12) and _NAME_CHAR_RE.match(norm, raw_start - 1):
            raw_start -= 1
        taken = m.end()
        start = _left_edge(norm, raw_start, kind_start, gaps)
        name = norm[start:kind_start]
        if not _is_name(name, suffix):
            lead = _LEAD_FILLER_RE.search(norm, raw_start, kind_start)
            road = road_ends.get(lead.start()) if lead else None
            if road is not None:
                start = road.start  # 淮河路那个电影院门口: the road names the landmark
            elif name or not (suffix in _UNIQUE_LANDMARKS or (suffix.startswith(_NAME_LIKE_KINDS) and len(suffix) > 2)):
                continue
        tail = _LANDMARK_TAIL_RE.match(norm, m.end())
        spans.append((_LANDMARK_PART if tail["part"] or tail["relation"] else _LANDMARK, start, tail.end()))
    for m in _SCHOOL_RE.finditer(norm):
        tail = _LANDMARK_TAIL_RE.match(norm, m.end())
        spans.append((_LANDMARK_PART if tail["part"] or tail["relation"] else _LANDMARK, m.start(), tail.end()))
    return spans


def find_place(text: str) -> str | None:
    """The place phrase of a whole message, as it reads in ``normalise(text)``, to hand to the geocoder; None when
    the message names no place, so the dialogue asks for one. The most specific phrase wins (door plate > crossing
    > named landmark with its gate or side > landmark > road); 小区/门口 without a name is no place."""
    norm = normalise(text)
    gaps = _gaps(text, norm)
    roads = _roads(norm, gaps)
    road_spans = _road_spans(norm, roads)
    landmark_spans = _landmark_spans(norm, roads, gaps)
    # A road or 路口 inside a landmark's name is part of that name (人民路地铁站, 人民路口腔医院).
    spans = landmark_spans + [
        (rank, s, e) for rank, s, e in road_spans if not any(ls <= s and e <= le for _, ls, le in landmark_spans)
    ]
    best = max(((rank, -s, e) for rank, s, e in spans), default=None)
    return norm[-best[1] : best[2]] if best else None
