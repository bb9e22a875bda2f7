"""nlp's classification interface and the keyword classifier behind it, on the project's own code table.

The labels are built from ``core/data/taxonomy_gbt47678_5.toml`` the way ``core.taxonomy.labels`` builds them from the
database (管理事项 only, their own keywords), and every expected code is looked up there by its name. The messages are
written for these tests in the words a citizen would use, not copied from the keyword table.
"""

from __future__ import annotations

import ast
import csv
import time
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from nlp.classify import Classification, Classifier, Guess, KeywordClassifier, Label, Thresholds
from tests.conftest import shared_path

REPO = Path(__file__).resolve().parents[2]
TAXONOMY = REPO / "core" / "data" / "taxonomy_gbt47678_5.toml"
MATTERS = tomllib.loads(TAXONOMY.read_text(encoding="utf-8"))["matter"]
CODE = {m["name"]: m["code"] for m in MATTERS}
NAME = {m["code"]: m["name"] for m in MATTERS}
MANHOLE = "井盖"  # any 井盖 matter of 大类 01 will do: citizens rarely know whose cover it is

# Written for the brief's common matters; each one must come out right.
COMMON = [
    ("人民路和解放路路口有个井盖不见了，车开过去很危险", MANHOLE),
    ("人行道上的井盖缺失，已经有人崴脚了", MANHOLE),
    ("中山路58号门前井盖松动，车一压就哐当响", MANHOLE),
    ("幸福小区东门外面的空地上堆了好多生活垃圾，好几天没人清理，臭死了", "暴露垃圾"),
    ("桥底下有人乱扔垃圾，都堆成小山了", "暴露垃圾"),
    ("楼道里和电线杆上贴满了小广告，办证的、通下水道的都有", "非法小广告"),
    ("学校门口一到放学就有小贩占道经营，人行道都被摊子占满了", "占道经营"),
    ("好多小汽车停在人行道上，行人只能走到马路上", "机动车乱停放"),
    ("文化路一整段的路灯晚上都不亮，走夜路很害怕", "路灯异常"),
    ("我家楼下那盏路灯坏了好几天了，一直没人修", "路灯异常"),
    ("隔壁工地半夜还在施工，吵得根本睡不着", "施工扰民"),
    ("小区外面一到晚上就有人摆烧烤摊，烟熏得窗户都不敢开", "露天烧烤"),
    ("夜市那边好几家在路边露天烧烤，油烟特别大", "露天烧烤"),
]
# More citizen messages, some of them beyond the keyword table's words on purpose: a rate, not each one.
# DEV was written before the classifier and looked at while setting its weights; HELD_OUT was written afterwards
# and run once, unchanged (7 of 15 right then). Neither is a substitute for a labelled sample of real reports.
DEV = [
    *COMMON,
    ("小区门口那个下水道盖子没了，晚上黑灯瞎火的差点掉进去", MANHOLE),
    ("学校旁边的窨井盖碎了一半，小孩子放学都从那走", MANHOLE),
    ("菜场后面的路边一堆垃圾，苍蝇到处飞，麻烦派人来清一下", "暴露垃圾"),
    ("我们单元门口墙上被人喷了好多电话号码，太难看了", "非法小广告"),
    ("建设路菜场外面好多人把菜摊摆到马路上，车都过不去", "占道经营"),
    ("有辆白色轿车乱停在小区出口，把路都堵住了，打电话也不挪", "机动车乱停放"),
    ("旁边楼盘每天晚上十一点还在打桩，噪音太大了，老人小孩都休息不好", "施工扰民"),
    ("楼下广场舞音响开得特别大，每天晚上吵到十点", "噪声扰民"),
    ("邻居在楼顶私自搭建了一个彩钢房，也没人管", "私搭乱建"),
    ("一楼住户把院子围起来盖了间违章建筑", "私搭乱建"),
    ("光明路上有个大坑，电动车骑过去差点摔倒", "道路破损"),
    ("人行道的地砖好多都翘起来了，一下雨踩上去溅一身水", "道路破损"),
    ("地铁站口电动车乱停乱放，把出口都堵了", "非机动车乱停放"),
    ("公交站旁边共享单车堆得乱七八糟，人都没法走", "共享单车乱象"),
    ("小区的垃圾桶满了好几天都没人来收，垃圾溢得满地都是", "垃圾站（箱）满溢"),
    ("路边的垃圾桶被人烧坏了，只剩个架子", "垃圾箱异常"),
    ("昨晚刮大风，路边的行道树倒了，压住了一辆车", "行道树异常"),
    ("人民路和建设路口的红绿灯坏了，一直闪黄灯", "交通信号灯异常"),
    ("公园里的公共厕所太脏了，臭气熏天，也没人打扫", "公共厕所异常"),
    ("小区消防通道被私家车堵死了，万一着火消防车进不来", "占用消防通道"),
    ("工地上的黄土都没盖，风一吹尘土飞扬", "工地扬尘"),
    ("楼下饭店的油烟直接排到我们窗户上，呛得受不了", "油烟污染"),
    ("小区路边的燃气管道好像漏气了，一股很重的燃气味", "露天燃气管道异常"),
    ("大风把电线刮断了，电线垂下来挂在路中间", "架空线缆脱落"),
    ("下雪以后人行道结冰了，好几个老人滑倒", "道路积雪、结冰"),
    ("小区里有辆僵尸车停了一年多了，落满灰也没人挪", "废弃车辆"),
    ("有人在公共车位上私装地锁", "私设地锁、阻车桩"),
    ("地铁口天天有人发传单，不接还硬塞", "街头散发广告"),
    ("楼道口有人乱堆乱放杂物，电动车都推不出去", "乱堆杂物"),
    ("马路中间有只死猫，好几天了没人处理", "动物尸体"),
]
HELD_OUT = [
    ("幸福里小区北门的雨水篦子被人偷了，一下雨门口全是水", "雨水箅子异常"),
    ("解放路上好几根路灯杆歪得厉害，感觉随时会倒", "路灯异常"),
    ("河里漂着好多塑料瓶和泡沫，味道也很难闻", "水域不洁"),
    ("晚上十二点了KTV还在唱，吵得整栋楼没法睡", "噪声扰民"),
    ("有人在绿化带里开荒种菜，草都被铲光了", "非法占绿毁绿"),
    ("工地的渣土车进进出出，车轮上的泥把整条路都弄脏了", "施工工地车轮夹带"),
    ("广场上的健身器材坏了一个，螺丝都掉了，小孩玩很危险", "户外健身设施异常"),
    ("公交站的候车亭玻璃被砸碎了，满地碎玻璃", "公交站设施异常"),
    ("饭店把桌子摆到人行道上做生意，每天晚上都这样", "店外经营"),
    ("路口的交通标志牌被树枝挡住了，根本看不见", "交通标志牌及标线异常"),
    ("小区门口有人杀活鸡卖，血水流了一地", "临街屠宰"),
    ("有人往雨水口里倒剩饭剩菜和油", "乱倒乱排污水、废水"),
    ("楼下的快递柜坏了，取件码输了也打不开", "快递柜异常"),
    ("马路上有一大片油污，电动车已经滑倒好几个了", "道路不洁"),
    ("街边电线杆上有人私拉电线给电动车充电", "擅自架设管线、杆线设施"),
]
OUT_OF_SCOPE = [
    "你好",
    "在吗",
    "谢谢你们",
    "我上次反映的怎么样了",
    "请问我上周投诉的事情有结果了吗",
    "我想咨询一下社保怎么转移",
    "养老保险断缴了怎么补交",
    "孩子上小学的学区怎么划分",
    "学校食堂的饭菜太难吃了",
    "医院挂号太难了，排了三个小时",
    "物业费一年涨了两次，太不合理",
    "公积金贷款什么时候能批下来",
]


def labels_from_toml() -> list[Label]:
    return [
        Label(m["code"], m["name"], m["code"][:2], m.get("component"), tuple(m.get("keywords", []))) for m in MATTERS
    ]


@pytest.fixture(scope="module")
def labels() -> list[Label]:
    return labels_from_toml()


@pytest.fixture(scope="module")
def classifier(labels: list[Label]) -> KeywordClassifier:
    return KeywordClassifier(labels)


def right(result: Classification, expected: str) -> bool:
    if result.code is None:
        return False
    if expected == MANHOLE:
        return MANHOLE in NAME[result.code] and result.major == "01"
    return result.code == CODE[expected]


def test_expected_codes_are_the_tables_own():
    """The names used below are in the table, under the codes the brief gives for them."""
    assert len(MATTERS) == 250 and len(CODE) == 250
    given = {"暴露垃圾": "06010", "非法小广告": "07001", "占道经营": "09006", "机动车乱停放": "09009"}
    assert {name: CODE[name] for name in given} == given
    assert CODE["施工扰民"] == "08001" and CODE["露天烧烤"] == "06029"
    assert all(expected == MANHOLE or expected in CODE for _, expected in DEV + HELD_OUT)


@pytest.mark.parametrize(("text", "expected"), COMMON)
def test_common_matters(classifier: KeywordClassifier, text: str, expected: str):
    result = classifier.classify(text)
    top = ", ".join(f"{g.code} {g.name} {g.p:.2f}" for g in result.top)
    assert right(result, expected), f"{text} → {result.decision}: {top}"
    assert result.decision in ("auto", "review")


def test_the_manhole_example_is_urgent(classifier: KeywordClassifier):
    result = classifier.classify("小区门口那个下水道盖子没了，晚上黑灯瞎火的差点掉进去")
    assert right(result, MANHOLE)
    assert result.severity == "紧急"
    assert result.major == "01" and result.component_code == result.code  # a 01 matter is the anomaly of its 部件
    assert result.decision == "auto"


@pytest.mark.parametrize(
    "text",
    [
        "路边的燃气管道漏气了，一股燃气味",
        "下了一夜雨，路口大面积积水，车都熄火了",
        "大风把行道树刮倒了，砸到一辆车",
        "配电箱在冒烟，还有火花",
        "人行道中间塌陷了一个大洞",
        "井盖没了，刚才有人掉进去了",
    ],
)
def test_urgent_cues(classifier: KeywordClassifier, text: str):
    assert classifier.classify(text).severity == "紧急"


def test_ordinary_reports_are_not_urgent(classifier: KeywordClassifier):
    for text in ("楼道里贴满了小广告", "有人占道摆摊卖水果", "路灯坏了好几天了"):
        assert classifier.classify(text).severity == "一般"


@pytest.mark.parametrize("text", OUT_OF_SCOPE)
def test_greetings_status_questions_and_other_departments_are_out_of_scope(classifier: KeywordClassifier, text: str):
    result = classifier.classify(text)
    assert result.decision == "out_of_scope"
    assert result.code is None and result.major is None and result.component_code is None


def test_rates_on_the_written_messages(classifier: KeywordClassifier):
    """Top-1 right: about 5 in 6 on DEV (36 of 43 when written) and half on HELD_OUT (7 of 15)."""
    dev = sum(right(classifier.classify(text), expected) for text, expected in DEV)
    held = sum(right(classifier.classify(text), expected) for text, expected in HELD_OUT)
    assert dev / len(DEV) >= 0.8, f"DEV {dev}/{len(DEV)}"
    assert held / len(HELD_OUT) >= 0.4, f"HELD_OUT {held}/{len(HELD_OUT)}"


def test_top_guesses_are_sorted_probabilities(classifier: KeywordClassifier):
    for text in [t for t, _ in DEV + HELD_OUT] + OUT_OF_SCOPE:
        result = classifier.classify(text)
        ps = [g.p for g in result.top]
        assert len(result.top) <= 3
        assert ps == sorted(ps, reverse=True)
        assert all(0.0 < p <= 1.0 for p in ps) and sum(ps) <= 1.0 + 1e-9
        assert len({g.code for g in result.top}) == len(result.top)
        assert result.text == text


def test_shared_evidence_is_shared_probability(classifier: KeywordClassifier):
    """A word of two labels' keywords gives both the same p, neither enough to act on alone."""
    result = classifier.classify("马葫芦盖")  # a keyword of 污水井盖异常 and of 不明井盖异常
    assert {g.code for g in result.top[:2]} == {CODE["污水井盖异常"], CODE["不明井盖异常"]}
    assert result.top[0].p == pytest.approx(result.top[1].p)
    assert result.decision == "review"


def test_longest_match_wins(classifier: KeywordClassifier):
    """占道 (占道经营) inside 占道停车 (机动车乱停放) does not count: nothing of 占道经营 is left."""
    result = classifier.classify("门口天天有人占道停车")
    assert result.code == CODE["机动车乱停放"]
    assert CODE["占道经营"] not in {g.code for g in result.top}
    alone = classifier.classify("门口天天有人占道")
    assert alone.code == CODE["占道经营"]


def test_more_evidence_more_confidence(classifier: KeywordClassifier):
    short = classifier.classify("违停")
    long = classifier.classify("有车违停，乱停车堵住了小区门口")
    assert short.code == long.code == CODE["机动车乱停放"]
    assert short.top[0].p < long.top[0].p
    assert short.decision == "review" and long.decision == "auto"


def test_full_width_and_spaces_are_normalised(classifier: KeywordClassifier):
    plain = classifier.classify("楼下KTV太吵了")
    wide = classifier.classify("楼下 ＫＴＶ　太 吵了")
    assert wide.top == plain.top and wide.decision == plain.decision
    assert wide.text == "楼下 ＫＴＶ　太 吵了"  # the text as given


@pytest.mark.parametrize("text", ["", "   ", "\n\t　", "。。。", "x"])
def test_empty_and_blank_text(classifier: KeywordClassifier, text: str):
    result = classifier.classify(text)
    assert result.decision == "out_of_scope" and result.top == () and result.severity == "一般"


def test_very_long_text(classifier: KeywordClassifier):
    chatter = ("今天天气不错，我们一家人吃完晚饭出去散步，遇到几个老邻居聊了一会儿。" * 400)[:10_000]
    assert classifier.classify(chatter).decision == "out_of_scope"
    start = time.perf_counter()
    result = classifier.classify(chatter[:5_000] + "门口的井盖没了" + chatter[5_000:])
    elapsed = time.perf_counter() - start
    assert len(result.text) > 10_000 and right(result, MANHOLE)
    assert elapsed < 0.5  # about 10 ms on a laptop


def test_fast_after_load(classifier: KeywordClassifier):
    texts = [t for t, _ in DEV + HELD_OUT] + OUT_OF_SCOPE
    classifier.classify(texts[0])
    start = time.perf_counter()
    for _ in range(20):
        for text in texts:
            classifier.classify(text)
    per_message = (time.perf_counter() - start) / (20 * len(texts))
    assert per_message < 0.001, f"{per_message * 1000:.3f} ms per message"  # about 0.06 ms on a laptop


def test_thresholds_change_the_decision(labels: list[Label], classifier: KeywordClassifier):
    text = "违停"
    p = classifier.classify(text).top[0].p
    assert 0.3 < p < 0.8  # review with the defaults
    assert classifier.classify(text).decision == "review"
    assert KeywordClassifier(labels, auto_threshold=p - 0.05).classify(text).decision == "auto"
    assert KeywordClassifier(labels, review_threshold=p + 0.05).classify(text).decision == "out_of_scope"
    sure = "小区门口那个下水道盖子没了"
    assert classifier.classify(sure).decision == "auto"
    assert KeywordClassifier(labels, auto_threshold=1.0).classify(sure).decision == "review"


def test_a_close_runner_up_keeps_it_in_review(labels: list[Label]):
    text = "马葫芦盖"  # two labels, equal p
    relaxed = KeywordClassifier(labels, auto_threshold=0.1, review_threshold=0.05, auto_margin=0.0)
    assert relaxed.classify(text).decision == "auto"
    strict = KeywordClassifier(labels, auto_threshold=0.1, review_threshold=0.05, auto_margin=0.2)
    assert strict.classify(text).decision == "review"


def test_thresholds_rule_is_model_independent():
    """The rule a trained model will share: given probabilities, the same decisions."""
    rule = Thresholds(auto=0.8, review=0.3, margin=0.5)
    a, b = Label("06010", "暴露垃圾", "06", None, ()), Label("06042", "垃圾站（箱）满溢", "06", None, ())
    assert rule.classification("x", [(a, 0.9), (b, 0.05)]).decision == "auto"
    assert rule.classification("x", [(a, 0.5), (b, 0.4)]).decision == "review"
    assert rule.classification("x", [(a, 0.2)]).decision == "out_of_scope"
    assert rule.classification("x", []).decision == "out_of_scope"
    result = rule.classification("井盖掉进去了", [(b, 0.05), (a, 0.9), (a, 0.0)])
    assert [g.code for g in result.top] == ["06010", "06042"] and result.severity == "紧急"
    assert rule.decide([Guess("06010", "暴露垃圾", 0.85), Guess("06042", "垃圾站（箱）满溢", 0.4)]) == "review"
    with pytest.raises(ValueError):
        Thresholds(auto=0.3, review=0.8)


def test_any_label_set_given_as_plain_data():
    """A city table with 4-digit CJ/T 214 codes and its own words: nothing of the national table is assumed."""
    mine = [
        Label("0101", "上水井盖", "01", "0101", ("自来水井盖坏了",)),
        Label("0201", "乱贴乱画", "02", None, ("牛皮癣", "墙上乱画")),
    ]
    classifier: Classifier = KeywordClassifier(mine)
    result = classifier.classify("巷子口的自来水井盖坏了")
    assert (result.code, result.major, result.component_code) == ("0101", "01", "0101")
    assert classifier.classify("墙上全是牛皮癣").component_code is None
    assert classifier.classify("路灯不亮").decision == "out_of_scope"  # not in this table
    assert KeywordClassifier([]).classify("井盖没了").decision == "out_of_scope"


def test_nlp_imports_nothing_of_ours():
    ours = {"core", "admin", "bots", "ivr", "tests", "bench"}
    for path in (REPO / "nlp").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            assert not {n.split(".")[0] for n in names} & ours, f"{path.name} imports {names}"


def test_real_messages_for_other_departments_are_rarely_auto(classifier: KeywordClassifier):
    """泰迪杯 2020 C: real 网络问政 messages. Those labelled 劳动和社会保障 / 教育文体 / 卫生计生 are not 城管 matters,
    so the classifier should seldom be sure about them (98.8 % not auto when written: 3 of 258 auto)."""
    path = shared_path("data", "taidi2020_c_sample", "附件2_messages_labeled.csv")
    with path.open(encoding="utf-8-sig") as f:
        rows = [r for r in csv.DictReader(f) if r["一级分类"] in ("劳动和社会保障", "教育文体", "卫生计生")]
    assert len(rows) >= 200
    decisions = Counter(classifier.classify(f"{r['留言主题']}。{r['留言详情']}").decision for r in rows)
    not_auto = 1 - decisions["auto"] / len(rows)
    assert not_auto >= 0.9, f"{decisions} of {len(rows)}"
