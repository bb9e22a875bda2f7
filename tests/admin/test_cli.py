"""The gridline command through its entry point: exit codes, one-line errors, --json output."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from admin.cli import main
from core import db, users
from core.crs import to_wgs84
from core.models import GridCell
from tests.conftest import shared_path


@pytest.fixture
def cli(db_url, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GRIDLINE_DATABASE_URL", db_url)
    monkeypatch.setenv("GRIDLINE_DATA_DIR", str(tmp_path / "var"))

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_config_masks_secrets(cli, monkeypatch):
    monkeypatch.setenv("GRIDLINE_DATABASE_URL", "postgresql://gridline:s3cret@db.example/gridline")
    monkeypatch.setenv("GRIDLINE_BAIDU_API_KEY", "abcdef")
    code, out, _ = cli("config", "--json")
    settings = json.loads(out)
    assert code == 0
    assert settings["database_url"] == "postgresql://gridline:***@db.example/gridline"
    assert settings["baidu_api_key"] == "***"
    assert "s3cret" not in out and "abcdef" not in out


def test_config_file_and_environment_precedence(cli, monkeypatch, tmp_path):
    path = tmp_path / "gridline.toml"
    path.write_text('[http]\nport = 9000\nhost = "0.0.0.0"\n', encoding="utf-8")
    monkeypatch.setenv("GRIDLINE_HTTP_PORT", "9100")
    code, out, _ = cli("config", "--json", "--config", str(path))
    settings = json.loads(out)
    assert code == 0 and settings["http_host"] == "0.0.0.0" and settings["http_port"] == 9100


@pytest.mark.parametrize(
    ("content", "needle"),
    [("[http]\nprot = 1\n", "未知配置项 http_prot"), ("http_port = 'eighty'\n", "应为整数"), ("x = [\n", "TOML")],
)
def test_bad_config_files_exit_2_with_one_line(cli, tmp_path, content, needle):
    path = tmp_path / "bad.toml"
    path.write_text(content, encoding="utf-8")
    code, _, err = cli("config", "--config", str(path))
    assert code == 2 and needle in one_line_error(err)


def test_commands_before_init_say_what_to_do(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDLINE_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, _, err = cli("locate", "人民路88号")
    assert code == 2 and "gridline init" in one_line_error(err)


def test_db_upgrade_reports_the_revision(cli):
    code, out, _ = cli("db", "upgrade", "--json")
    assert code == 0 and json.loads(out) == {"revision": db.head_revision()}


def test_usage_errors_are_one_line(cli):
    code, _, err = cli("grid", "import")
    assert code == 2 and "file" in one_line_error(err)
    code, _, err = cli("frobnicate")
    assert code == 2 and "frobnicate" in one_line_error(err)


def test_grid_import_and_locate_by_coordinates(cli, db_url):
    path = shared_path("data", "hangzhou_xiacheng_gis", "wangge_grids.geojson")
    code, out, _ = cli("grid", "import", str(path), "--district", "330105", "--district-name", "下城区", "--json")
    assert code == 0 and json.loads(out)["cells"] > 250
    scenic = json.loads(shared_path("data", "hangzhou_xiacheng_gis", "poi_scenic.geojson").read_text())
    poi = next(f for f in scenic["features"] if f["properties"]["name"] == "艮山古樟")
    x, y = poi["geometry"]["coordinates"]
    code, out, _ = cli("locate", "--lonlat", f"{x},{y}", "--json")
    wgs = json.loads(out)
    gcj = poi["properties"]["location"]
    code2, out2, _ = cli("locate", "--lonlat", gcj, "--crs", "gcj02", "--json")
    assert code == code2 == 0
    assert wgs["grid"]["code"] == json.loads(out2)["grid"]["code"]
    assert wgs["grid"]["code"].startswith("330105")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("locate", "--lonlat", "abc"), "--lonlat"),
        (("locate", "--lonlat", "120,95"), "超出"),
        (("locate", "--lonlat", "120,30", "--crs", "utm"), "未知坐标系"),
        (("locate",), "地点描述"),
    ],
)
def test_bad_locate_arguments(cli, argv, needle):
    cli("db", "upgrade")
    code, _, err = cli(*argv)
    assert code == 2 and needle in one_line_error(err)


def test_bad_grid_file_exit_2_and_database_unchanged(cli, db_url, tmp_path):
    good = shared_path("data", "hangzhou_xiacheng_gis", "wangge_grids.geojson")
    cli("grid", "import", str(good), "--district", "330105")
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [}', encoding="utf-8")
    code, _, err = cli("grid", "import", str(bad))
    line = one_line_error(err)
    assert code == 2 and str(bad) in line and "第 1 行" in line
    engine = db.make_engine(db_url)
    with Session(engine) as s:
        assert len(s.exec(select(GridCell)).all()) > 250
    engine.dispose()


def test_unknown_place_exits_1_with_the_reason(cli):
    cli("db", "upgrade")
    code, out, _ = cli("locate", "火星基地", "--json")
    assert code == 1 and json.loads(out)["found"] is False


def test_a_point_outside_every_cell_answers_where_it_fell_in_wgs84(cli):
    cli("db", "upgrade")
    code, out, _ = cli("locate", "--lonlat", "116.4,39.9", "--crs", "gcj02", "--json")
    answer = json.loads(out)
    lon, lat = to_wgs84(116.4, 39.9, "gcj02")
    assert code == 1 and answer["found"] is False
    assert (answer["lon"], answer["lat"]) == (round(lon, 7), round(lat, 7)) != (116.4, 39.9)


def test_init_loads_the_default_taxonomy_once(cli):
    code, out, _ = cli("init", "--json")
    assert code == 0 and json.loads(out)["taxonomy_loaded"] is True
    code, out, _ = cli("init", "--json")
    assert code == 0 and json.loads(out)["taxonomy_loaded"] is False
    code, out, _ = cli("taxonomy", "show", "06010", "--json")
    (item,) = json.loads(out)
    assert code == 0 and item["name"] == "暴露垃圾" and item["conditions"][0]["unit"] in ("工作时", "工作日", "自然时")
    code, _, err = cli("taxonomy", "show", "77777")
    assert code == 2 and "77777" in one_line_error(err)


def test_taxonomy_import_refuses_duplicates_in_one_line(cli):
    cli("init")
    path = shared_path("standards", "cjt214_codes_partial.csv")
    code, _, err = cli("taxonomy", "import", str(path))
    assert code == 2 and "重复的代码" in one_line_error(err)
    code, out, _ = cli("taxonomy", "show", "01001", "--json")
    assert code == 0 and len(json.loads(out)) == 2


def test_map_writes_an_svg_and_refuses_unwritable_paths(cli, tmp_path):
    cli("db", "upgrade")
    code, out, _ = cli("map", "--out", str(tmp_path / "city.svg"), "--json")
    assert code == 0 and json.loads(out)["bytes"] > 0
    assert "尚未导入单元网格" in (tmp_path / "city.svg").read_text(encoding="utf-8")
    code, _, err = cli("map", "--out", str(tmp_path / "no" / "such" / "dir.svg"))
    assert code == 2 and "无法写入" in one_line_error(err)


def test_global_options_work_before_the_verb(cli, tmp_path):
    cli("db", "upgrade")
    path = tmp_path / "g.toml"
    path.write_text("http_port = 9300\n", encoding="utf-8")
    code, out, _ = cli("--json", "--config", str(path), "config")
    assert code == 0 and json.loads(out)["http_port"] == 9300


def test_init_demo_leaves_an_existing_grid_alone(cli):
    path = shared_path("data", "hangzhou_xiacheng_gis", "wangge_grids.geojson")
    cli("init")
    cli("grid", "import", str(path), "--district", "330105")
    code, out, _ = cli("init", "--demo", "--json")
    assert code == 0 and json.loads(out)["demo"] is None
    code, out, _ = cli("locate", "--lonlat", "120.17,30.29", "--json")
    assert json.loads(out)["grid"]["code"].startswith("330105")


def test_user_token_and_evaluate_verbs(cli, tmp_path):
    cli("init")
    code, out, _ = cli("user", "add", "wang", "--role", "shift_lead", "--json")
    assert code == 0 and json.loads(out)["role"] == "shift_lead"
    code, _, err = cli("user", "add", "wang", "--role", "shift_lead")
    assert code == 2 and "已存在" in one_line_error(err)
    code, _, err = cli("user", "add", "li", "--role", "department")
    assert code == 2 and "--department" in one_line_error(err)
    code, out, _ = cli("token", "create", "wang", "--json")
    assert code == 0 and json.loads(out)["token"].startswith("gl_")
    code, _, err = cli("token", "create", "nobody")
    assert code == 2 and "不存在" in one_line_error(err)
    code, out, _ = cli(
        "evaluate", "--period", "2026-11", "--object", "dept", "--csv", str(tmp_path / "e.csv"), "--json"
    )
    assert code == 0 and json.loads(out) == [] and (tmp_path / "e.csv").exists()
    code, _, err = cli("evaluate", "--period", "November", "--object", "dept")
    assert code == 2 and "评价周期" in one_line_error(err)


def test_demo_staff_are_made_once_into_a_database_without_users_with_their_own_passwords(
    cli, demo_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("GRIDLINE_DATABASE_URL", demo_url)
    code, out, _ = cli("init", "--demo", "--demo-staff", "--json")
    staff = json.loads(out)["staff"]
    assert code == 0 and {a["role"] for a in staff} == {
        "operator", "shift_lead", "dispatcher", "admin", "department", "collector", "leader"
    }  # fmt: skip
    assert len({a["password"] for a in staff}) == len(staff)
    engine = db.make_engine(demo_url)
    try:
        for account in staff:
            assert users.actor_for_password(engine, account["name"], account["password"]).role == account["role"]
    finally:
        engine.dispose()
    kept = tmp_path / "var" / "demo" / "staff.txt"
    assert kept.stat().st_mode & 0o777 == 0o600 and staff[0]["password"] in kept.read_text()
    code, out, _ = cli("init", "--demo", "--demo-staff", "--json")
    assert code == 0 and json.loads(out)["staff"] == []
