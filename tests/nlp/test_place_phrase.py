"""find_place: the place phrase inside a whole citizen message, handed to the geocoder.

The messages are written for these tests the way citizens write and talk: WeChat (emoji, full-width digits,
spaces as separators), Telegram one-liners, long web forms and hotline transcripts without punctuation and full of
fillers. Expected phrases are spans of ``normalise(text)``: Chinese numbers come out as digits.
"""

from __future__ import annotations

import pytest

from nlp.normalise import normalise
from nlp.places import FILLERS, find_place, parse

PLACES = [
    # door plates: the shortest span is road + number; 门口 adds nothing, 对面/楼下 move the place
    ("喂你好我要反映那个人民路八十八号门口有一堆垃圾", "人民路88号"),
    ("解放路一百零三号门口的井盖被人偷了，晚上很危险", "解放路103号"),
    ("中山北路１２－３号门口的垃圾桶满了好几天了", "中山北路12-3号"),
    ("人民路88号对面有人占道卖水果", "人民路88号对面"),
    ("马路对面人民路88号楼下有人烧烤", "人民路88号楼下"),
    ("12319吗？光明街12号门口井盖没了，请派人来看看", "光明街12号"),
    ("請問中山路八十八號門口的路燈壞了誰管", "中山路88号"),
    ("那个那个就是那个那个那个下水道的那个盖子没了啊就在那个那个我们那个前进路八号门口", "前进路8号"),
    # crossings
    ("解放路和人民路交叉口的红绿灯坏了", "解放路和人民路交叉口"),
    ("解放路人民路路口有个井盖翘起来了", "解放路人民路路口"),
    ("建设路口那个垃圾桶满了没人倒", "建设路口"),
    ("紫荆路与商城路交叉口西北角，人行道旁长期堆放生活垃圾", "紫荆路与商城路交叉口西北角"),
    ("和平路与青年路路口往北五十米，路中间有个井盖没了", "和平路与青年路路口往北50米"),
    ("一下雨建设路跟二马路交叉口就淹，水都没过脚脖子", "建设路跟二马路交叉口"),
    ("幸福路和平路路口有人占道经营", "幸福路和平路路口"),
    ("喂你好那个那个红绿灯啊那个坏了啊那个长江路跟黄河路那个路口那个红绿灯不亮了", "长江路跟黄河路那个路口"),
    # named landmarks with gate, building or side
    ("阳光小区东门外面堆了好多建筑垃圾", "阳光小区东门外面"),
    ("阳光小区门口那个下水道盖子没了", "阳光小区门口"),
    ("市一医院对面有人摆摊卖水果", "市一医院对面"),
    ("青川公园南门旁边的公厕太脏了", "青川公园南门旁边"),
    ("人民路地铁站A口好多共享单车乱停", "人民路地铁站A口"),
    ("人民路口腔医院门口有人发小广告", "人民路口腔医院门口"),
    ("幸福里小区3号楼下垃圾堆了三天了", "幸福里小区3号楼下"),
    ("违建举报：江南名苑12栋1单元，把车库改成门面", "江南名苑12栋1单元"),
    ("花园小区北门那边有人烧垃圾", "花园小区北门"),
    ("火车站出站口对面的非机动车道路面破损严重", "火车站出站口对面"),
    ("一中门口放学的时候小摊贩特别多", "一中门口"),
    ("城东派出所旁边的路灯不亮", "城东派出所旁边"),
    ("城南村村口那个垃圾池满了", "城南村村口"),
    ("翠苑二区门口的路灯不亮", "翠苑二区门口"),
    ("市图书馆北门外面有人摆摊", "市图书馆北门外面"),
    ("你好，龙湖小区西门外的人行道上好多烟头和瓜子皮", "龙湖小区西门外"),
    ("🙏🙏麻烦管管！！锦绣花园北门外面绿化带里全是垃圾", "锦绣花园北门外面"),
    ("我是阳光小区的住户，小区西边围墙外头有人天天倒垃圾", "阳光小区"),
    ("嗯那个我住在那个建华小区啊我们小区外面那个马路两边全是停的车", "建华小区"),
    ("举报：城东街道桃花岭社区有居民在公共通道上私自砌墙圈地", "城东街道桃花岭社区"),
    # a road names an unnamed landmark
    ("喂那个就是说我们那个淮河路那个电影院门口啊那个晚上一排摆摊的都占着那个路啊", "淮河路那个电影院门口"),
    ("喂那个电力的井盖啊一走上去就哐哐响在那个解放路那个银行门口", "解放路那个银行门口"),
    ("雨篦子缺了 和谐路公交站前", "和谐路公交站前"),
    # roads alone, with a side or a stretch
    ("人民路上好多坑，电动车都没法骑", "人民路"),
    ("沿江路边上有人倒了一车渣土", "沿江路边上"),
    ("建设路靠近人民路那段路灯都不亮", "建设路靠近人民路那段"),
    ("暴雨过后红旗路积水半米深，公交车都熄火了", "红旗路"),
    ("人行道上摆摊卖菜 锦华路那段 天天这样", "锦华路那段"),
    ("公厕没纸 也没洗手液 东湖公园", "东湖公园"),
    # the most specific of several
    ("阳光小区东门，就是人民路88号那里，井盖没了", "人民路88号"),
    ("人民路上阳光小区北门有人摆摊", "阳光小区北门"),
]

NO_PLACE = [
    "垃圾好多没人管",
    "路灯坏了",
    "我家门口有人乱停车",
    "小区门口那个下水道盖子没了",
    "我们这个小区东门那个路灯不亮",
    "隔壁小区的狗天天叫",
    "菜市场旁边那个公厕太脏了",
    "我们小区消防通道又被私家车堵了",
    "人行道上的井盖缺失，已经有人崴脚了",
    "盲道上全停满了电动车",
    "下水道堵了，污水漫到路上",
    "马路中间有只死猫，被车压了好几次了",
    "好多小汽车停在人行道上，行人只能走到马路上",
    "有人在路边树上和路灯杆上拉了好多横幅",
    "过年放完鞭炮，我们这条街上红纸屑铺了一地",
    "这条路晚上太黑了",
    "十字路口有人搭台子搞活动",
    "巷子里堆满杂物 三轮都推不过去",
    "有人把垃圾桶弄倒了也没人管",
    "你们管不管占道啊？医院门口一圈卖水果的",
    "下班路上看到有人往河里倒垃圾",
    "坐12路公交看到路边有人烧垃圾",
    "喂喂你好那个那个我这个信号不好啊我等一下再打",
    "那个那个就是那个路边那个沟的那个盖板啊翘起来了",
    "城管态度太差了",
    "",
]


@pytest.mark.parametrize(("text", "place"), PLACES)
def test_finds_the_place(text: str, place: str) -> None:
    assert find_place(text) == place


@pytest.mark.parametrize("text", NO_PLACE)
def test_no_place_is_none(text: str) -> None:
    assert find_place(text) is None


@pytest.mark.parametrize(("text", "place"), PLACES)
def test_phrase_is_a_clean_span_of_the_normalised_text(text: str, place: str) -> None:
    """The geocoder and the dialogue quote the phrase back, so it must read as the citizen wrote it."""
    found = find_place(text)
    assert found is not None
    assert found in normalise(text)
    assert found not in ("门口", "小区门口")
    assert not found.startswith(tuple(FILLERS))


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("喂你好我要反映那个人民路八十八号门口有一堆垃圾", "door"),
        ("人民路88号对面有人占道卖水果", "door"),
        ("解放路和人民路交叉口的红绿灯坏了", "crossing"),
        ("解放路人民路路口有个井盖翘起来了", "crossing"),
        ("喂你好那个那个红绿灯啊那个坏了啊那个长江路跟黄河路那个路口那个红绿灯不亮了", "crossing"),
        ("人民路上好多坑，电动车都没法骑", "road"),
        ("青川公园南门旁边的公厕太脏了", "landmark"),
    ],
)
def test_parse_reads_the_phrase_as_the_right_kind(text: str, kind: str) -> None:
    """What find_place hands over must be understood by parse, which the geocoder runs on it."""
    found = find_place(text)
    assert found is not None
    assert parse(found).kind == kind
