"""The ``gridline`` command. Exit 0 on success; 2 with one line naming the problem on bad input."""

from __future__ import annotations

import argparse
import getpass
import json
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from admin.runtime import Runtime
from core import census, db, taxonomy, users
from core.cases import LOCAL, ROLES, Actor
from core.config import ConfigError, Settings, load_settings, mask_query
from core.crs import UnknownCRS, parse_crs
from core.datafile import DataError, read_csv
from core.gazetteer import import_places
from core.geocoder import Located
from core.grid import GridIndex, import_grid, relocate
from core.models import Component, Place
from nlp import taidi
from nlp.metrics import Evaluation, LabelledFileError, evaluate, read_jsonl
from nlp.model import DEFAULT_FAMILY, DEFAULT_MODEL, FAMILIES, ModelError, train
from nlp.places import find_place

VERSION = "0.1.0"


class UsageError(Exception):
    """Bad arguments: reported as one line, exit 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _command_line() -> Actor:
    """Who changes the set-up from the command line, as the audit trail names them."""
    return Actor(None, f"命令行 {getpass.getuser()}"[:60], "admin")


class Cli:
    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        self.args = args
        self.json = bool(args.json)
        self.runtime = Runtime(settings)
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False)

    # --- output ----------------------------------------------------------------------------------------------
    def emit(self, data: Any, text: str | Callable[[], None]) -> None:
        if self.json:
            print(json.dumps(_plain(data), ensure_ascii=False))
        elif callable(text):
            text()
        else:
            self.out.print(text)

    @contextmanager
    def progress(self, label: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        """A progress bar on stderr (quiet in --json mode and when stderr is not a terminal)."""
        if self.json or not self.err.is_terminal:
            yield lambda _n: None
            return
        columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.err, transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.advance(task, n)

    @property
    def engine(self):
        return self.runtime.engine

    def require_schema(self) -> None:
        if db.current_revision(self.engine) is None:
            raise UsageError("数据库尚未初始化，请先运行 gridline init")

    # --- commands --------------------------------------------------------------------------------------------
    def cmd_config(self) -> None:
        settings = self.runtime.settings.masked()
        self.emit(settings, lambda: [self.out.print(f"{k} = {v}") for k, v in settings.items()])

    def cmd_init(self) -> None:
        revision = db.upgrade(self.engine)
        loaded = False
        if not taxonomy.is_installed(self.engine):
            taxonomy.install(self.engine, taxonomy.read_toml(taxonomy.DEFAULT_FILE))
            loaded = True
        result: dict[str, Any] = {
            "revision": revision,
            "database": db.database_kind(self.runtime.settings.database_url),
            "taxonomy_loaded": loaded,
        }
        if self.args.demo:
            result["demo"] = self.load_demo() if not GridIndex.load(self.engine).codes else None
        if self.args.demo_staff:
            if not self.args.demo:
                raise UsageError("--demo-staff 需与 --demo 一起使用（示范账号属于示范城区）")
            result["staff"] = self.demo_staff()
        lines = [
            f"数据库已就绪（{result['database']}，迁移版本 {revision}）",
            "已载入默认分类代码表 GB/T 47678.5-2026" if loaded else "分类代码表已存在，未改动",
        ]
        if self.args.demo and result["demo"] is None:
            lines.append("数据库中已有单元网格，未载入示范城区")
        elif self.args.demo:
            d = result["demo"]
            lines.append(
                f"示范城区 {d['district']}: {d['cells']} 个单元网格、{d['places']} 条地名、"
                f"{d['departments']} 个专业部门、{d['components']} 个部件"
            )
        if result.get("staff"):
            lines.append(f"示范账号（密码只显示这一次，另存于 {self.staff_file}）：")
            lines += [f"  {a['name']}  {a['role_name']}  密码 {a['password']}" for a in result["staff"]]
        self.emit(result, "\n".join(lines))

    def is_demo_city(self) -> bool:
        from core import democity

        return any(code.startswith(democity.DISTRICT_CODE) for code in GridIndex.load(self.engine).codes[:1])

    @property
    def staff_file(self) -> Path:
        return Path(self.runtime.settings.data_dir) / "demo" / "staff.txt"

    def demo_staff(self) -> list[dict[str, str]]:
        """One console account per role, so a fresh `make run` can be tried at once: only into the demo city's
        database while it has no users (never beside a centre's real city or accounts), each with its own random
        password, kept in a file only the owner can read."""
        if users.staff(self.engine) or not self.is_demo_city():
            return []
        accounts = []
        for name, role, dept in DEMO_STAFF:
            password = secrets.token_urlsafe(9)
            users.add_user(self.engine, name, role, department=dept, password=password)
            accounts.append({"name": name, "role": role, "role_name": ROLES[role], "password": password})
        self.staff_file.parent.mkdir(parents=True, exist_ok=True)
        self.staff_file.touch(mode=0o600)
        self.staff_file.write_text("".join(f"{a['name']}\t{a['role']}\t{a['password']}\n" for a in accounts))
        return accounts

    def load_demo(self) -> dict[str, Any]:
        from core import democity

        folder = Path(self.runtime.settings.data_dir) / "demo"
        files = democity.generate(folder)
        with self.progress("导入示范网格") as advance:
            grid = import_grid(
                self.engine,
                files.grid,
                district=democity.DISTRICT_CODE,
                district_name=democity.DISTRICT_NAME,
                progress=advance,
            )
        with self.progress("导入示范地名") as advance:
            places = import_places(self.engine, files.places, progress=advance)
        counts = census.import_census(self.engine, files.departments, files.components)
        return {
            "district": democity.DISTRICT_NAME,
            "cells": grid.cells,
            "places": places.entries + places.crossings,
            "departments": counts.departments,
            "components": counts.components,
        }

    def cmd_db_upgrade(self) -> None:
        revision = db.upgrade(self.engine)
        self.emit({"revision": revision}, f"数据库已升级到迁移版本 {revision}")

    def cmd_taxonomy_import(self) -> None:
        self.require_schema()
        table = taxonomy.read_file(Path(self.args.file))
        taxonomy.install(self.engine, table)
        data = {
            "components": table.count("component"),
            "matters": table.count("matter"),
            "conditions": len(table.conditions),
        }
        self.emit(
            data,
            f"已导入 {data['components']} 个管理部件、{data['matters']} 个管理事项、{data['conditions']} 条立案条件",
        )

    def cmd_taxonomy_show(self) -> None:
        self.require_schema()
        views = taxonomy.show(self.engine, self.args.code)
        if not views:
            raise UsageError(f"分类代码表中没有代码 {self.args.code}")
        data = [v.as_dict() for v in views]

        def text() -> None:
            for v in data:
                kind = "管理部件" if v["kind"] == "component" else "管理事项"
                self.out.print(f"[bold]{v['code']} {v['name']}[/]  {kind} · {v['major_code']} {v['major_name']}")
                if v["keywords"]:
                    self.out.print(f"  群众说法: {'、'.join(v['keywords'])}")
                for c in v["conditions"]:
                    lim = c["limits"]
                    self.out.print(
                        f"  立案条件 {c['level']} [{c['severity']}] {c['condition']}；处置时限 "
                        f"A {lim['A']:g} / B {lim['B']:g} / C {lim['C']:g} {c['unit']}；结案: {c['closing']}"
                    )

        self.emit(data, text)

    def cmd_grid_import(self) -> None:
        self.require_schema()
        s = self.runtime.settings
        with self.progress("导入单元网格") as advance:
            result = import_grid(
                self.engine,
                Path(self.args.file),
                district=self.args.district or s.district_code,
                district_given=bool(self.args.district),
                district_name=self.args.district_name or "",
                crs=self.args.crs,
                area_class=self.args.area_class or s.default_area_class,
                local_field=self.args.local_field,
                progress=advance,
            )
        relocate(self.engine, Place, Component)
        msg = (
            f"已导入 {result.cells} 个单元网格（{result.features} 个要素，合并 {result.merged} 个多面要素），"
            f"{result.streets} 个街道、{result.communities} 个社区"
        )
        if result.repaired:
            msg += f"；修复无效几何 {len(result.repaired)} 个（要素 {', '.join(map(str, result.repaired[:10]))}）"
        if result.derived_codes:
            msg += "；标准网格码按“由北向南、自西向东”规则由本地编码派生"
        self.emit(result, msg)

    def cmd_gazetteer_import(self) -> None:
        self.require_schema()
        with self.progress("导入地名") as advance:
            result = import_places(
                self.engine, Path(self.args.file), kind=self.args.kind, crs=self.args.crs, progress=advance
            )
        kinds = "、".join(f"{k} {n}" for k, n in sorted(result.by_kind.items()))
        msg = f"已导入 {result.entries} 条地名（{kinds}），地名库现有路口 {result.crossings} 个"
        if result.skipped_unnamed:
            msg += f"；跳过无名称要素 {len(result.skipped_unnamed)} 个（{result.skipped_unnamed[0]} 等）"
        self.emit(result, msg)

    def cmd_locate(self) -> None:
        self.require_schema()
        geocoder = self.runtime.geocoder
        if self.args.lonlat:
            result = geocoder.locate_point(*_lonlat(self.args.lonlat), _crs(self.args.crs))
        elif self.args.text:
            result = geocoder.locate(" ".join(self.args.text))
        else:
            raise UsageError("locate: 请给出地点描述，或 --lonlat 经度,纬度")
        self.emit(result.as_dict(), lambda: self._print_located(result))
        if not isinstance(result, Located):
            raise SystemExit(1)

    def _print_located(self, result: Any) -> None:
        if not isinstance(result, Located):
            self.out.print(f"未能定位: {result.reason}")
            if result.lon is not None:
                self.out.print(f"  WGS-84 {result.lon:.6f}, {result.lat:.6f}")
            return
        self.out.print(f"{result.matched}  ({result.method}，置信度 {result.confidence:.2f})")
        self.out.print(f"  WGS-84 {result.lon:.6f}, {result.lat:.6f}")
        if result.grid:
            g = result.grid
            self.out.print(f"  单元网格 {g.code} {g.street}{g.community}{g.name}（{g.area_class} 类区域）")
        else:
            self.out.print("  不在任何单元网格内")
        if result.note:
            self.out.print(f"  {result.note}")

    # --- classification (issue 4) ------------------------------------------------------------------------------
    def cmd_classify(self) -> None:
        """One text from the arguments, or one per stdin line (plain text, or JSON with ``id`` and ``text``)."""
        items = [(None, " ".join(self.args.text))] if self.args.text else _stdin_items()
        classifier = self.runtime.classifier
        for ident, text in items:
            result = classifier.classify(text)
            data = {
                **({"id": ident} if ident is not None else {}),
                "text": text,
                **result.as_dict(),
                "major": result.major,
                "component_code": result.component_code,
                "place_phrase": find_place(text),
            }
            self.emit(data, lambda data=data: self._print_classification(data))

    def _print_classification(self, data: dict[str, Any]) -> None:
        decision = {"auto": "自动", "review": "需受理员确认", "out_of_scope": "非城管事项"}[data["decision"]]
        head = f"{data['top'][0]['code']} {data['top'][0]['name']}" if data["code"] else "—"
        self.out.print(f"{head}  [{decision}]  {data['severity']}  地点: {data['place_phrase'] or '未提及'}")
        for guess in data["top"]:
            self.out.print(f"  {guess['p']:.3f}  {guess['code']} {guess['name']}")
        if data.get("scope_reason"):
            self.out.print(f"  原因：{data['scope_reason']}")
        if data.get("secondary"):
            s = data["secondary"]
            self.out.print(f"  另一问题：{s['code']} {s['name']}（{s['p']:.3f}）")

    def cmd_train(self) -> None:
        from nlp.corpus import DEFAULT_PHRASINGS, corpus_digest, generate, load_phrasings  # pypinyin: training only

        self.require_schema()
        labels = taxonomy.labels(self.runtime.engine)
        codes = {label.code for label in labels}
        corpus_dir = Path(self.args.corpus) if self.args.corpus else DEFAULT_PHRASINGS.parent
        phrasings = corpus_dir / "phrasings.toml"
        if not phrasings.is_file():
            raise UsageError(f"train: {phrasings} 不存在")
        try:
            loaded = load_phrasings(phrasings)
        except ValueError as exc:  # tomllib's errors are ValueErrors too
            raise UsageError(f"train: {phrasings}: {exc}") from None
        with self.progress("生成训练语料"):
            examples = [(e.text, e.code or e.topic) for e in generate(loaded, seed=self.args.seed)]
        real = taidi.training_examples()  # real letters, where ../shared/data is at hand
        examples += real
        if self.args.from_cases:
            examples += _case_examples(Path(self.args.from_cases), codes)
        out = Path(self.args.out) if self.args.out else DEFAULT_MODEL
        start = time.perf_counter()
        meta = {"corpus": corpus_digest(phrasings), "real_letters": len(real), "real_digest": taidi.digest(real)}
        with self.progress(f"训练分类模型（{len(examples)} 条，{self.args.family}）"):
            model = train(examples, labels, family=self.args.family, seed=self.args.seed, meta=meta)
            model.save(out)
        summary = {
            "model": str(out),
            "family": self.args.family,
            "examples": len(examples),
            "real_letters": len(real),
            "features": model.meta["features"],
            "temperatures": [round(h.temperature, 4) for h in model.heads],
            "bytes": out.stat().st_size,
            "seconds": round(time.perf_counter() - start, 1),
        }
        self.emit(summary, f"已写入 {out}：{len(examples)} 条语料，{model.meta['features']} 个特征，"
                  f"{summary['bytes'] / 1e6:.1f} MB，用时 {summary['seconds']} 秒")  # fmt: skip

    def cmd_classify_eval(self) -> None:
        rows = read_jsonl(Path(self.args.file))
        result = evaluate(self.runtime.classifier, rows)
        self.emit(result.as_dict(), lambda: self._print_evaluation(result))

    def _print_evaluation(self, result: Evaluation) -> None:
        o = result.overall
        self.out.print(f"事项 {o.n} 条：top-1 {o.top1:.3f}  top-3 {o.top3:.3f}  大类 {o.major:.3f}  "
                       f"macro-F1 {result.macro_f1:.3f}")  # fmt: skip
        self.out.print(f"非城管事项：precision {result.oos_precision:.3f}  recall {result.oos_recall:.3f}  "
                       f"F1 {result.oos_f1:.3f}")  # fmt: skip
        for name, s in sorted(result.channels.items()):
            self.out.print(f"  {name:<10} {s.n:>4} 条  top-1 {s.top1:.3f}  top-3 {s.top3:.3f}  大类 {s.major:.3f}")
        if result.confused:
            self.out.print("最常混淆（实际 → 判为）：")
            for true, predicted, count in result.confused:
                self.out.print(f"  {true} → {predicted}  {count} 次")
        self.out.print(f"每条 {result.ms_per_text:.2f} ms")

    def cmd_map(self) -> None:
        from admin.mapsvg import render

        self.require_schema()
        out = Path(self.args.out)
        svg = render(self.engine, width=self.args.width)
        try:
            out.write_text(svg, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{out}: 无法写入: {exc.strerror}") from None
        self.emit({"out": str(out), "bytes": len(svg.encode())}, f"已绘制网格图 {out}")

    def cmd_user_add(self) -> None:
        self.require_schema()
        scope = [s.strip() for s in (self.args.scope or "").split(",") if s.strip()]
        password = None
        if self.args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
            if len(password) < 8:
                raise UsageError("密码至少 8 个字符")
        user = users.add_user(
            self.engine, self.args.name, self.args.role, department=self.args.department, scope=scope, password=password
        )
        data = {"name": user.name, "role": user.role, "department": user.department_code, "scope": user.grid_scope}
        self.emit(data, f"已添加用户 {user.name}（{ROLES[user.role]}）")

    # --- departments' notices (issue 14) ------------------------------------------------------------------------
    def cmd_department_set(self) -> None:
        from core import setup

        self.require_schema()
        a = self.args
        given = zip(setup.NOTICE_FIELDS, (a.webhook, a.webhook_secret, a.email, a.wecom, a.dingtalk,
                                          a.dingtalk_secret, a.telegram), strict=True)  # fmt: skip
        changes = {column: value for column, value in given if value is not None}
        if not changes:
            raise UsageError("department set: 请至少给出一项：--webhook --webhook-secret --email --wecom --dingtalk "
                             "--dingtalk-secret --telegram（空字符串清除）")  # fmt: skip
        changed = setup.set_notice_channels(self.engine, _command_line(), a.code, changes)
        text = f"已更新部门 {a.code} 的通知设置" if changed else "没有改变"
        self.emit({"department": a.code, "changed": changed}, text)

    def cmd_department_show(self) -> None:
        from core import notices, setup

        self.require_schema()
        dept = next((d for d in setup.departments(self.engine) if d.code == self.args.code), None)
        if dept is None:
            raise UsageError(f"部门 {self.args.code} 不存在")
        shown = {column: getattr(dept, column) or "" for column in setup.NOTICE_FIELDS}
        for column in ("webhook_url", "wecom_url", "dingtalk_url"):
            shown[column] = mask_query(shown[column])
        for column in ("webhook_secret", "dingtalk_secret"):
            shown[column] = _masked_secret(shown[column])
        keys = ("channel", "event", "number", "status", "attempts", "sent_at", "error")
        rows = [{k: r[k] for k in keys} for r in notices.deliveries(self.engine, dept.code)]
        data = {
            "code": dept.code,
            "name": dept.name,
            "channels": notices.channels_of(dept),
            **shown,
            "deliveries": [{**r, "sent_at": r["sent_at"].isoformat() if r["sent_at"] else None} for r in rows],
        }

        def text() -> None:
            self.out.print(f"[bold]{dept.code} {dept.name}[/]  通知渠道: {'、'.join(data['channels']) or '未设置'}")
            for column, value in shown.items():
                self.out.print(f"  {setup.NOTICE_FIELDS[column]}: {value or '—'}", markup=False)
            self.out.print(f"最近 {len(rows)} 条通知：" if rows else "还没有通知")
            for r in rows:
                when = r["sent_at"].astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S") if r["sent_at"] else "未送达"
                line = (f"  {r['channel']}  {r['event']}  {r['number'] or '—'}  {r['status']}  "
                        f"尝试 {r['attempts']} 次  {when}  {r['error'][:120]}")  # fmt: skip
                self.out.print(line.rstrip(), markup=False)

        self.emit(data, text)

    def cmd_token_create(self) -> None:
        self.require_schema()
        token = users.create_token(self.engine, self.args.user)
        self.emit({"user": self.args.user, "token": token}, token)

    def cmd_open311_key(self) -> None:
        """The Open311 client applications' keys (``core.apikeys``): add (the key shown once), list, revoke."""
        from datetime import datetime

        from core import apikeys

        self.require_schema()
        a = self.args
        if a.key_action == "add":
            secret = apikeys.add_key(self.engine, _command_line(), a.name, a.rate)
            self.emit({"name": a.name, "rate_per_minute": a.rate, "api_key": secret}, secret)
        elif a.key_action == "revoke":
            done = apikeys.revoke_key(self.engine, _command_line(), a.name)
            said = f"已吊销 {a.name} 的密钥" if done else f"{a.name} 的密钥早已吊销"
            self.emit({"name": a.name, "revoked": done}, said)
        else:
            keys = apikeys.list_keys(self.engine)

            def when(at: datetime | None) -> str:
                return at.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M") if at else ""

            def text() -> None:
                self.out.print("还没有 Open311 密钥" if not keys else f"{len(keys)} 个 Open311 密钥：")
                for k in keys:
                    state = f"已吊销（{when(k.revoked_at)}）" if k.revoked_at else "有效"
                    line = f"  {k.name}  {state}  每分钟 {k.rate_per_minute} 次  创建于 {when(k.created_at)}"
                    line += f"  上报 {k.reports} 条"
                    self.out.print(line, markup=False)

            rows = [{**asdict(k), "created_at": k.created_at.isoformat(),
                     "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None} for k in keys]  # fmt: skip
            self.emit(rows, text)

    def cmd_intake_retry(self) -> None:
        self.require_schema()
        count = self.runtime.intake.retry()
        self.emit({"retried": count}, f"已重新处理 {count} 条上报")

    def cmd_evaluate(self) -> None:
        from core import evaluation

        self.require_schema()
        try:
            rows = evaluation.evaluate(self.engine, self.args.period, self.args.object, level=self.args.level)
        except ValueError as exc:
            raise UsageError(f"evaluate: {exc}") from None
        try:
            if self.args.csv:
                evaluation.write_csv(rows, Path(self.args.csv))
            if self.args.xlsx:  # the three objects of the period, as the console's export has them
                evaluation.write_xlsx(evaluation.sheets(self.engine, self.args.period, self.args.level), self.args.xlsx)
        except OSError as exc:
            raise UsageError(f"evaluate: {exc.filename}: 无法写入: {exc.strerror}") from None
        data = [r.as_dict() for r in rows]

        def text() -> None:
            from rich.table import Table

            table = Table(title=f"{self.args.period} 综合评价（{self.args.object}）")
            for column in ("对象", "名称", "综合指标值", "等级"):
                table.add_column(column)
            for r in rows:
                table.add_row(r.object_code, r.object_name, f"{r.score:.1f}", r.grade)
            self.out.print(table)

        self.emit(data, text)

    def cmd_wechat_menu(self) -> None:
        from bots.wechat import set_menu

        self.require_schema()
        try:
            menu = set_menu(self.runtime.settings, self.engine)
        except Exception as exc:  # wechatpy's API errors carry WeChat's errcode and errmsg
            raise UsageError(f"wechat menu: {exc}") from None
        names = "、".join(b["name"] for b in menu["button"])
        self.emit(menu, f"已设置公众号菜单：{names}")

    def cmd_telegram_set_webhook(self) -> None:
        import asyncio

        from bots.telegram_bot import set_webhook

        try:
            ok = asyncio.run(set_webhook(self.runtime.settings, self.args.url))
        except Exception as exc:
            raise UsageError(f"telegram set-webhook: {exc}") from None
        self.emit({"url": self.args.url, "ok": ok}, f"已设置 Telegram Webhook：{self.args.url}")

    def cmd_telegram_poll(self) -> None:
        from bots.telegram_bot import TelegramBot

        self.require_schema()
        if not self.runtime.settings.telegram_token:
            raise UsageError("telegram poll: 需要设置 GRIDLINE_TELEGRAM_TOKEN")
        self.err.print("Telegram 轮询模式（开发用），Ctrl-C 结束")
        TelegramBot(self.runtime.settings, self.runtime.dialogue, polling=True).poll()

    def cmd_notify_run(self) -> None:
        """Deliver department notices until SIGTERM/SIGINT (exit 0); ``--once``: what is due now, then exit."""
        import asyncio
        import logging
        import signal
        from datetime import timedelta

        from bots.deptnotify import DeptNotifier

        self.require_schema()
        s = self.runtime.settings
        logging.basicConfig(level=s.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        if self.args.batch < 1:
            raise UsageError("notify run: --batch 应为正整数")
        from core.notices import sweep_alerts

        worker = DeptNotifier(
            self.engine, s, batch=self.args.batch, interval=self.args.interval,
            lease=timedelta(seconds=self.args.lease), sweep=lambda: sweep_alerts(self.runtime.loop, s),
        )  # fmt: skip

        async def main() -> int:
            if self.args.once:
                try:
                    return await worker.drain()
                finally:
                    await worker.close()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await worker.run(stop)
            return 0

        tried = asyncio.run(main())
        if self.args.once:
            self.emit({"tried": tried}, f"已处理 {tried} 条部门通知")

    # --- the 12319 hotline --------------------------------------------------------------------------------------
    def _speech(self) -> Any:
        """The configured Vosk model, loaded now (once per process); None when none is configured."""
        from nlp.speech import SpeechError

        speech = self.runtime.speech
        if speech is None:
            self.err.print("未配置语音模型（GRIDLINE_VOSK_MODEL）：12319 热线只转人工坐席", markup=False)
            return None
        try:
            speech.model  # noqa: B018  (load before the first call, and fail at start on a bad path)
        except SpeechError as exc:
            raise UsageError(f"vosk_model: {exc}") from None
        return speech

    def _hotline(self, speech: Any) -> Any:
        from ivr.prompts import PromptSet, prompts_root

        s = self.runtime.settings
        return self.runtime.hotline(
            PromptSet(prompts_root(s.prompts_dir, s.data_dir)), Path(s.data_dir) / "ivr" / "calls", speech
        )

    def _checked_hotline(self) -> Any:
        from ivr.prompts import PromptsMissing

        hotline = self._hotline(self._speech())
        try:
            hotline.check()
        except PromptsMissing as exc:
            raise UsageError(str(exc)) from None
        return hotline

    def cmd_ivr(self) -> None:
        import logging

        from ivr.server import serve

        self.require_schema()
        hotline = self._checked_hotline()
        s = self.runtime.settings
        logging.basicConfig(level=s.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        try:
            serve(hotline, s.agi_host, s.agi_port)
        except OSError as exc:
            raise UsageError(f"无法监听 {s.agi_host}:{s.agi_port}: {exc.strerror or exc}") from None

    def cmd_ivr_prompts(self) -> None:
        from ivr.prompts import DIGITS, PromptSet, PromptsMissing, catalogue, prompts_root

        self.require_schema()
        s = self.runtime.settings
        prompts = PromptSet(prompts_root(s.prompts_dir, s.data_dir))
        texts = {**catalogue(self.engine), **DIGITS}
        try:
            with self.progress("生成语音提示", total=len(texts)) as advance:
                made, kept = prompts.generate(
                    texts, voice=self.args.voice, speed=self.args.speed, force=self.args.force, progress=advance
                )
        except PromptsMissing as exc:
            raise UsageError(str(exc)) from None
        data = {"dir": str(prompts.root), "prompts": len(texts), "made": made, "kept": kept}
        self.emit(
            data,
            f"语音提示 {len(texts)} 个：新生成 {made} 个，未变 {kept} 个（{prompts.tts}）。"
            f"中心录音放入 {prompts.recorded}，同名文件优先播放",
        )

    def cmd_call_sim(self) -> None:
        from ivr.sim import TypedSpeech, simulate

        self.require_schema()
        outcome = simulate(
            self._hotline(TypedSpeech()), sys.stdin, sys.stderr if self.json else sys.stdout, caller=self.args.caller
        )
        summary = {"reported": "已上报", "handover": "转人工", "queried": "已查询", "hangup": "来电者挂机"}
        text = f"通话结束：{summary.get(outcome.kind, outcome.kind)}"
        if outcome.case_number:
            text += f"，受理编号 {outcome.case_number}"
        self.emit(outcome, text)

    def _start_hotline(self) -> Any:
        """The AGI server beside HTTP; missing prompts or a taken port leave the hotline off with a message."""
        from ivr.prompts import PromptsMissing
        from ivr.server import Background

        s = self.runtime.settings
        hotline = self._hotline(self._speech())
        try:
            hotline.check()
            return Background(hotline, s.agi_host, s.agi_port).start()
        except PromptsMissing as exc:
            self.err.print(f"12319 热线未启动：{exc}", markup=False)
        except OSError as exc:
            self.err.print(f"12319 热线未启动：无法监听 {s.agi_host}:{s.agi_port}: {exc.strerror or exc}", markup=False)
        hotline.close()
        return None

    def cmd_serve(self) -> None:
        from admin.app import run

        self.require_schema()
        self.runtime.geocoder  # noqa: B018  (bad geocoder settings stop the start, not the first request)
        self.runtime.warm()  # the classifier and indexes loaded once, before any request thread asks for them
        if redone := self.runtime.intake.retry():  # filings lost in a crash (they are committed without waiting)
            self.err.print(f"重新处理了 {redone} 条未完成的上报")
        hotline = self._start_hotline()
        try:
            run(self.runtime)
        finally:
            if hotline is not None:
                hotline.stop()


def _stdin_items() -> list[tuple[str | None, str]]:
    items: list[tuple[str | None, str]] = []
    for number, line in enumerate(sys.stdin, 1):
        line = line.strip()
        if not line:
            continue
        if not line.startswith("{"):
            items.append((None, line))
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise UsageError(f"标准输入第 {number} 行: 不是合法的 JSON") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise UsageError(f"标准输入第 {number} 行: 缺少文字字段 text")
        items.append((row.get("id"), row["text"]))
    return items


def _case_examples(path: Path, codes: set[str]) -> list[tuple[str, str | None]]:
    """A city's own history (columns text, code; an empty code is out of scope), checked line by line."""
    examples: list[tuple[str, str | None]] = []
    for row in read_csv(path, ("text", "code"), {"text": ("描述", "问题描述"), "code": ("事项代码", "小类代码")}):
        text, code = row.values.get("text", "").strip(), row.values.get("code", "").strip() or None
        if not text:
            raise DataError(path, row.where("text"), "为空")
        if code is not None and code not in codes:
            raise DataError(path, row.where("code"), f"{code} 不在分类代码表中")
        examples.append((text, code))
    return examples


DEMO_STAFF = (  # (name, role, department) of the demo city's console accounts
    ("demo-operator", "operator", None),
    ("demo-lead", "shift_lead", None),
    ("demo-dispatcher", "dispatcher", None),
    ("demo-admin", "admin", None),
    ("demo-hw", "department", "HW"),
    ("demo-collector", "collector", None),
    ("demo-leader", "leader", None),
)


def _masked_secret(secret: str | None) -> str:
    """A set secret shown only by its kind: ``whsec_***`` (the rest would let anyone sign)."""
    if not secret:
        return ""
    return secret[:6] + "***" if secret.startswith("whsec_") else "***"


def _lonlat(raw: str) -> tuple[float, float]:
    try:
        lon, lat = (float(v) for v in raw.replace("，", ",").split(","))
    except ValueError:
        raise UsageError(f"--lonlat 应为 经度,纬度，得到 {raw!r}") from None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise UsageError(f"--lonlat 超出经纬度范围: {raw}")
    return lon, lat


def _crs(raw: str) -> str:
    try:
        return parse_crs(raw)
    except UnknownCRS as exc:
        raise UsageError(f"--crs: {exc}") from None


def _plain(data: Any) -> Any:
    if is_dataclass(data) and not isinstance(data, type):
        return _plain(asdict(data))
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(v) for v in data]
    return data


def build_parser() -> Parser:
    top = Parser(add_help=False)
    top.add_argument("--json", action="store_true", help="机器可读的 JSON 输出")
    top.add_argument("--config", metavar="FILE", help="TOML 配置文件")
    # the same options after the verb; SUPPRESS keeps a verb's parser from resetting what came before it
    common = Parser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="机器可读的 JSON 输出")
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML 配置文件")
    p = Parser(prog="gridline", description="Gridline 数字城管公众上报平台", parents=[top])
    p.add_argument("--version", action="version", version=f"gridline {VERSION}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    sub.add_parser("config", parents=[common], help="显示生效的配置（密钥已遮盖）")
    init = sub.add_parser("init", parents=[common], help="创建或迁移数据库，载入默认分类代码表")
    init.add_argument("--demo", action="store_true", help="同时载入示范城区")
    init.add_argument(
        "--demo-staff", action="store_true", help="数据库中还没有用户时，为示范城区各岗位各建一个控制台账号（随机密码）"
    )
    dbp = sub.add_parser("db", parents=[common], help="数据库")
    dbp.add_subparsers(dest="action", required=True, parser_class=Parser).add_parser(
        "upgrade", parents=[common], help="迁移到最新版本"
    )
    sub.add_parser("serve", parents=[common], help="启动 HTTP 服务（和 12319 热线 FastAGI 服务）")
    ivr = sub.add_parser("ivr", parents=[common], help="只启动 12319 热线 FastAGI 服务")
    ivr_prompts = ivr.add_subparsers(dest="action", parser_class=Parser).add_parser(
        "prompts", parents=[common], help="用 espeak-ng 生成语音提示文件"
    )
    ivr_prompts.add_argument("--voice", default="cmn", help="espeak-ng 语音（默认普通话 cmn）")
    ivr_prompts.add_argument("--speed", type=int, default=200, help="语速（每分钟词数，默认 200）")
    ivr_prompts.add_argument("--force", action="store_true", help="全部重新生成")
    sim = sub.add_parser("call-sim", parents=[common], help="在终端模拟一次 12319 来电")
    sim.add_argument("--caller", default="13800138000", help="来电号码")

    tax = sub.add_parser("taxonomy", parents=[common], help="管理部件和管理事项分类代码")
    tax_sub = tax.add_subparsers(dest="action", required=True, parser_class=Parser)
    tax_sub.add_parser("import", parents=[common], help="导入城市自己的代码表 (.toml/.csv)").add_argument("file")
    tax_sub.add_parser("show", parents=[common], help="显示一个代码").add_argument("code")

    grid = sub.add_parser("grid", parents=[common], help="万米单元网格")
    gi = grid.add_subparsers(dest="action", required=True, parser_class=Parser).add_parser(
        "import", parents=[common], help="从 GeoJSON 导入（替换现有网格）"
    )
    gi.add_argument("file")
    gi.add_argument("--district", help="6 位区划代码（本地编码时用于派生标准码）")
    gi.add_argument("--district-name", help="区名称")
    gi.add_argument("--crs", default="wgs84", help="坐标系 wgs84|gcj02|bd09")
    gi.add_argument("--area-class", choices=("A", "B", "C"), help="未标注时的区域类别")
    gi.add_argument("--local-field", help="本地网格编号字段名（默认自动识别）")

    gaz = sub.add_parser("gazetteer", parents=[common], help="地名地址库")
    ga = gaz.add_subparsers(dest="action", required=True, parser_class=Parser).add_parser(
        "import", parents=[common], help="从 CSV 或 GeoJSON 导入地名"
    )
    ga.add_argument("file")
    ga.add_argument("--kind", help="统一指定地名类型：区域、地片、区片、街巷、门牌、兴趣点")
    ga.add_argument("--crs", default="wgs84", help="坐标系 wgs84|gcj02|bd09")

    loc = sub.add_parser("locate", parents=[common], help="地点描述或坐标 → 位置与单元网格")
    loc.add_argument("text", nargs="*", help="地点描述，如 人民路88号")
    loc.add_argument("--lonlat", metavar="LON,LAT", help="坐标逆地理编码")
    loc.add_argument("--crs", default="wgs84", help="--lonlat 的坐标系 wgs84|gcj02|bd09")
    user = sub.add_parser("user", parents=[common], help="工作人员账号")
    ua = user.add_subparsers(dest="action", required=True, parser_class=Parser).add_parser(
        "add", parents=[common], help="添加用户"
    )
    ua.add_argument("name")
    ua.add_argument("--role", required=True, choices=users.STAFF_ROLES)
    ua.add_argument("--department", help="专业部门代码（role=department 时必填）")
    ua.add_argument("--scope", help="负责范围：逗号分隔的街道/社区/网格代码（监督员）")
    ua.add_argument("--password-stdin", action="store_true", help="从标准输入读取控制台登录密码")
    dept = sub.add_parser("department", parents=[common], help="专业部门的通知渠道")
    dept_sub = dept.add_subparsers(dest="action", required=True, parser_class=Parser)
    ds = dept_sub.add_parser("set", parents=[common], help="设置部门的通知渠道（给出的项；空字符串清除）")
    ds.add_argument("code", help="部门代码")
    ds.add_argument("--webhook", metavar="URL", help="Webhook 地址（http/https，按 Standard Webhooks 签名）")
    ds.add_argument("--webhook-secret", metavar="whsec_…", help="Webhook 签名密钥")
    ds.add_argument("--email", metavar="ADDRESS", help="电子邮箱")
    ds.add_argument("--wecom", metavar="URL", help="企业微信群机器人地址")
    ds.add_argument("--dingtalk", metavar="URL", help="钉钉机器人地址")
    ds.add_argument("--dingtalk-secret", metavar="SECRET", help="钉钉机器人加签密钥（可选）")
    ds.add_argument("--telegram", metavar="CHAT_ID", help="Telegram 会话 ID（经 telegram_token 的机器人发送）")
    dept_sub.add_parser("show", parents=[common], help="显示部门的通知渠道（密钥已遮盖）和最近 10 条通知").add_argument(
        "code"
    )
    token = sub.add_parser("token", parents=[common], help="API 令牌")
    token.add_subparsers(dest="action", required=True, parser_class=Parser).add_parser(
        "create", parents=[common], help="为用户创建令牌（只显示这一次）"
    ).add_argument("user")
    o311 = sub.add_parser("open311", parents=[common], help="Open311 GeoReport v2 接口")
    o311_key = o311.add_subparsers(dest="action", required=True, parser_class=Parser).add_parser(
        "key", parents=[common], help="客户端应用的 API 密钥"
    )
    key_sub = o311_key.add_subparsers(dest="key_action", required=True, parser_class=Parser)
    key_add = key_sub.add_parser("add", parents=[common], help="为客户端应用创建密钥（只显示这一次）")
    key_add.add_argument("name", help="客户端应用名称")
    key_add.add_argument("--rate", type=int, default=60, help="每分钟最多提交次数（默认 60）")
    key_sub.add_parser("list", parents=[common], help="列出密钥（不显示密钥本身）")
    key_sub.add_parser("revoke", parents=[common], help="吊销密钥").add_argument("name")
    intake = sub.add_parser("intake", parents=[common], help="上报处理")
    intake.add_subparsers(dest="action", required=True, parser_class=Parser).add_parser(
        "retry", parents=[common], help="重新处理失败或未立卷的上报"
    )

    ev = sub.add_parser("evaluate", parents=[common], help="综合评价（CJ/T 292）")
    ev.add_argument("--period", required=True, help="评价周期：2026-11 或 2026-11-01..2026-11-15")
    ev.add_argument("--object", required=True, choices=("dept", "region", "post"), help="部门、区域或岗位")
    ev.add_argument("--level", default="street", choices=("grid", "community", "street"), help="区域评价的层级")
    ev.add_argument("--csv", metavar="FILE", help="另存为 CSV（UTF-8，Excel 可直接打开）")
    ev.add_argument("--xlsx", metavar="FILE", help="另存为 Excel 工作簿：部门、区域（按 --level）、岗位各一张表")

    wx = sub.add_parser("wechat", parents=[common], help="微信公众号")
    wx.add_subparsers(dest="action", required=True, parser_class=Parser).add_parser(
        "menu", parents=[common], help="设置公众号菜单"
    )
    tg = sub.add_parser("telegram", parents=[common], help="Telegram 机器人")
    tg_sub = tg.add_subparsers(dest="action", required=True, parser_class=Parser)
    tg_sub.add_parser("set-webhook", parents=[common], help="向 Telegram 登记 Webhook 地址").add_argument("url")
    tg_sub.add_parser("poll", parents=[common], help="轮询模式运行机器人（开发用）")
    nt = sub.add_parser("notify", parents=[common], help="部门通知")
    nr = nt.add_subparsers(dest="action", required=True, parser_class=Parser).add_parser(
        "run", parents=[common], help="投递部门通知，直到 SIGTERM/SIGINT"
    )
    nr.add_argument("--once", action="store_true", help="投递当前到期的通知后退出")
    nr.add_argument("--batch", type=int, default=100, help="每批领取的条数（默认 100）")
    nr.add_argument("--interval", type=float, default=0.25, help=argparse.SUPPRESS)  # seconds between idle polls
    nr.add_argument("--lease", type=float, default=60.0, help=argparse.SUPPRESS)  # seconds a claim is held

    cls = sub.add_parser("classify", parents=[common], help="文字 → 管理事项代码（不给文字时逐行读标准输入）")
    cls.add_argument("text", nargs="*", help="群众的描述")
    tr = sub.add_parser("train", parents=[common], help="训练分类模型")
    tr.add_argument("--corpus", metavar="DIR", help="语料目录（含 phrasings.toml，默认 nlp/corpus）")
    tr.add_argument("--from-cases", metavar="CSV", help="本市历史案卷（列 text, code），与语料一起训练")
    tr.add_argument("--out", metavar="FILE", help="模型文件（默认 models/classifier.npz）")
    tr.add_argument("--seed", type=int, default=0, help="随机种子（同一种子得到同一模型）")
    tr.add_argument("--family", choices=FAMILIES, default=DEFAULT_FAMILY, help="模型类型（默认 %(default)s）")
    ce = sub.add_parser("classify-eval", parents=[common], help="在标注文件上评测分类器")
    ce.add_argument("file", help="JSONL：每行 {id, text, code}，非城管事项 code 为 null")
    mp = sub.add_parser("map", parents=[common], help="把单元网格、社区界和道路画成 SVG")
    mp.add_argument("--out", required=True, metavar="FILE.svg")
    mp.add_argument("--width", type=int, default=1000, help="图宽（像素）")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        args = build_parser().parse_args(argv)
        settings = load_settings(args.config)
        cli = Cli(args, settings)
        name = "cmd_" + "_".join(p for p in (args.command, getattr(args, "action", None)) if p)
        try:
            getattr(cli, name.replace("-", "_"))()
        finally:
            cli.runtime.close()
    except (UsageError, ConfigError, DataError, users.UserError, LabelledFileError, ModelError, ValueError) as exc:
        err.print(f"gridline: {exc}", markup=False)
        return 2
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
