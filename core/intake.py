"""Intake: every report is stored first, in its own transaction, idempotently on (channel, channel_ref); then
enriched step by step (transcript, classification, place, duplicates) and filed as a case in the 受理 queue.

A step that fails is recorded as failed and can be retried (``retry``); the report itself is never lost, and a
report is filed as at most one case even when two workers process it at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.cases import SYSTEM, TERMINAL, CaseError, CaseLoop, allocate_number
from core.crs import UnknownCRS, near_distance_m, parse_crs, to_wgs84
from core.geocoder import GazetteerGeocoder, Located
from core.models import CaseEvent, CaseFile, Report
from nlp.classify import Classifier

CHANNELS = ("wechat", "telegram", "webchat", "hotline", "collector", "open311", "operator")
MAX_TEXT = 5000
STEPS = ("transcribe", "classify", "locate", "duplicates", "file")


class BadReport(ValueError):
    """A report that cannot be taken as it is; the message names the field."""


class Transcriber(Protocol):
    def transcribe_file(self, path: str) -> str: ...


@dataclass(frozen=True)
class Incoming:
    """A report as a channel hands it over."""

    channel: str
    channel_ref: str
    received_at: datetime
    sender: str = ""
    text: str = ""
    media: tuple[dict[str, Any], ...] = ()
    lon: float | None = None
    lat: float | None = None
    crs: str = "wgs84"
    address: str = ""

    def checked(self) -> Incoming:
        if self.channel not in CHANNELS:
            raise BadReport(f"channel 应为 {'、'.join(CHANNELS)} 之一")
        if not self.channel_ref or len(self.channel_ref) > 128:
            raise BadReport("channel_ref 不能为空，且不超过 128 个字符")
        if len(self.text) > MAX_TEXT or len(self.address) > 200 or len(self.sender) > 128:
            raise BadReport(f"text 最多 {MAX_TEXT} 字，address 最多 200 字")
        if self.received_at.tzinfo is None:
            raise BadReport("received_at 需带时区")
        if not (self.text.strip() or self.media or self.address.strip()):
            raise BadReport("上报内容为空：需要文字、语音/照片或地址")
        if (self.lon is None) != (self.lat is None):
            raise BadReport("经度 lon 与纬度 lat 需同时提供")
        if self.lon is not None and not (-180 <= self.lon <= 180 and -90 <= self.lat <= 90 and math.isfinite(self.lon)):
            raise BadReport("坐标超出经纬度范围")
        try:
            parse_crs(self.crs)
        except UnknownCRS as exc:
            raise BadReport(str(exc)) from None
        return self


@dataclass
class Services:
    """What the pipeline needs from the rest of the system; each may be absent, and its step is then skipped."""

    classifier: Classifier | None = None
    geocoder: GazetteerGeocoder | None = None
    transcriber: Transcriber | None = None
    media_path: Callable[[str], str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Intake:
    def __init__(self, loop: CaseLoop, services: Services) -> None:
        self.loop = loop
        self.engine = loop.engine
        self.services = services

    def store(self, incoming: Incoming) -> tuple[Report, bool]:
        """Store first; the same (channel, channel_ref) again returns the stored report and False."""
        incoming = incoming.checked()
        lon, lat = incoming.lon, incoming.lat
        if lon is not None and lat is not None:
            lon, lat = to_wgs84(lon, lat, incoming.crs)
        report = Report(
            channel=incoming.channel,
            channel_ref=incoming.channel_ref,
            sender=incoming.sender,
            text=incoming.text.strip(),
            media=list(incoming.media),
            lon=lon,
            lat=lat,
            address=incoming.address.strip(),
            received_at=incoming.received_at,
            steps={},
        )
        with Session(self.engine, expire_on_commit=False) as session:
            session.add(report)
            try:
                session.commit()
                return report, True
            except IntegrityError:
                session.rollback()
        return self.find(incoming.channel, incoming.channel_ref), False

    def find(self, channel: str, channel_ref: str) -> Report:
        with Session(self.engine) as session:
            report = session.exec(
                select(Report).where(Report.channel == channel, Report.channel_ref == channel_ref)
            ).one()
            return report

    def submit(self, incoming: Incoming) -> tuple[Report, bool]:
        """Store, then run the pipeline for a new report (a repeated delivery is not processed again)."""
        report, created = self.store(incoming)
        if created:
            report = self.process(report.id)
        return report, created

    def retry(self) -> int:
        """Run the pipeline again for every report with a failed step or without a case; returns how many."""
        with Session(self.engine) as session:
            reports = session.exec(select(Report)).all()
            todo = [
                r.id for r in reports if r.case_id is None or any(s.get("status") == "failed" for s in r.steps.values())
            ]
        for report_id in todo:
            self.process(report_id)
        return len(todo)

    # --- the pipeline -----------------------------------------------------------------------------------------
    def process(self, report_id: int) -> Report:
        """Run the steps not yet done, then record all their outcomes in one write. A crash in between leaves the
        report without its case, which ``retry`` picks up."""
        with Session(self.engine) as session:
            report = session.get(Report, report_id)
        steps = dict(report.steps)
        for name in STEPS:
            if steps.get(name, {}).get("status") in ("ok", "skipped"):
                continue
            try:
                status, detail = getattr(self, f"_step_{name}")(report)
                steps[name] = {"status": status, **({"detail": detail} if detail else {})}
            except CaseError as exc:
                steps[name] = {"status": "failed", "error": exc.message}
            except Exception as exc:  # a step must never lose the report: record why and go on
                steps[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]}
        report.steps = steps
        with Session(self.engine) as session:
            session.execute(
                update(Report)
                .where(Report.id == report.id)
                .values(
                    steps=steps, transcript=report.transcript, classification=report.classification, place=report.place
                )
            )
            session.commit()
        return report

    def _step_transcribe(self, report: Report) -> tuple[str, str]:
        audio = [m for m in report.media if m.get("kind") == "audio"]
        if not audio or report.text:
            return "skipped", "无语音"
        if self.services.transcriber is None or self.services.media_path is None:
            return "skipped", "未配置语音识别"
        report.transcript = self.services.transcriber.transcribe_file(self.services.media_path(audio[0]["sha256"]))
        return "ok", ""

    def _step_classify(self, report: Report) -> tuple[str, str]:
        text = report.text or report.transcript
        if self.services.classifier is None or not text:
            return "skipped", "无文字或未配置分类器"
        result = self.services.classifier.classify(text)
        report.classification = {
            "code": result.code,
            "decision": result.decision,
            "severity": result.severity,
            "top": [{"code": g.code, "name": g.name, "p": round(g.p, 4)} for g in result.top],
        }
        return "ok", ""

    def _step_locate(self, report: Report) -> tuple[str, str]:
        geocoder = self.services.geocoder
        if geocoder is None:
            return "skipped", "未配置地理编码"
        if report.lon is not None and report.lat is not None:
            found = geocoder.locator.reverse(report.lon, report.lat)
            if isinstance(found, Located):
                report.place = {**found.as_dict(), "lon": report.lon, "lat": report.lat}
            else:
                cell = geocoder.locator.grid.cell_at(report.lon, report.lat)
                report.place = {
                    "lon": report.lon,
                    "lat": report.lat,
                    "matched": "",
                    "method": "坐标",
                    "confidence": 1.0,
                    "grid": cell.__dict__ if cell else None,
                }
            return "ok", ""
        text = report.address or report.text or report.transcript
        found = geocoder.locate(text) if text else None
        if isinstance(found, Located):
            report.place = found.as_dict()
            return "ok", ""
        report.place = {"found": False, "reason": found.reason if found else "无地址"}
        return "ok", "未能定位"

    def _step_duplicates(self, report: Report) -> tuple[str, str]:
        code = (report.classification or {}).get("code")
        place = report.place or {}
        if not code or "lon" not in place:
            return "skipped", "无事项代码或位置"
        rules = self.loop.rules
        since = report.received_at - timedelta(days=rules.duplicate_window_days)
        box = rules.duplicate_radius_m / 90_000  # degrees, generous at these latitudes
        with Session(self.engine) as session:
            candidates = session.exec(
                select(CaseFile.id, CaseFile.number, CaseFile.lon, CaseFile.lat).where(
                    CaseFile.matter_code == code,
                    CaseFile.state.not_in(TERMINAL),
                    CaseFile.created_at >= since,
                    CaseFile.lon.between(place["lon"] - box * 2, place["lon"] + box * 2),
                    CaseFile.lat.between(place["lat"] - box, place["lat"] + box),
                )
            ).all()
        near = [
            (near_distance_m(lon, lat, place["lon"], place["lat"]), number)
            for case_id, number, lon, lat in candidates
            if lon is not None and case_id != report.case_id
        ]
        near = [n for n in near if n[0] <= rules.duplicate_radius_m]
        place["duplicate_of"] = min(near)[1] if near else None
        report.place = place
        return "ok", ""

    def _step_file(self, report: Report) -> tuple[str, str]:
        if report.case_id is not None:
            return "ok", ""
        cls = report.classification or {}
        place = report.place or {}
        grid = place.get("grid") or {}
        at = self.loop.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            code = cls.get("code") if cls.get("decision") != "out_of_scope" else None
            matter = self.loop._matter_values(session, code) if code else {}
            case = CaseFile(
                number=allocate_number(session, at),
                state="待受理",
                **matter,
                severity=cls.get("severity") or "一般",
                description=report.text or report.transcript,
                address=report.address or place.get("matched") or "",
                lon=place.get("lon"),
                lat=place.get("lat"),
                grid_code=grid.get("code"),
                area_class=grid.get("area_class") or "B",
                source=report.channel,
                public=report.channel != "collector",
                duplicate_of=place.get("duplicate_of"),
                collector_id=self.loop.collector_for(session, grid.get("code")),
                stage="受理",
                stage_started_at=at,
                stage_limit=self.loop.rules.stage_hours.get("受理", 1.0),
                created_at=at,
                updated_at=at,
            )
            session.add(case)
            session.flush()
            claimed = session.execute(
                update(Report).where(Report.id == report.id, Report.case_id.is_(None)).values(case_id=case.id)
            )
            if claimed.rowcount != 1:
                session.rollback()  # another worker filed this report first
                return "ok", ""
            session.add(
                CaseEvent(
                    case_id=case.id,
                    seq=1,
                    at=at,
                    actor=report.channel,
                    role="system",
                    action="report",
                    from_state="",
                    to_state="待受理",
                    data={"report_id": report.id, "classification": cls},
                    attachments=[m["sha256"] for m in report.media if "sha256" in m],
                )
            )
            session.commit()
            report.case_id = case.id
        top = (cls.get("top") or [{}])[0].get("p", 0.0)
        threshold = self.loop.rules.auto_accept_confidence
        if code and threshold and cls.get("decision") == "auto" and top >= threshold:
            self.loop.act(case.number, "accept", SYSTEM, {"note": f"置信度 {top:.2f}，按配置自动受理"})
        return "ok", case.number
