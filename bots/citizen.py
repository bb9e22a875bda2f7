"""What a citizen may read about cases: only those their own reports on this channel became (found through
Report.sender), in plain words. Read-only; the case loop's own ``get`` is for staff actors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.models import CaseEvent, CaseFile, Department, Report

LOCAL = ZoneInfo("Asia/Shanghai")
AFTER_PHOTO_ACTIONS = ("complete", "self_handle", "check")

STATE_WORDS = {
    "待受理": "已收到，等待受理员受理",
    "待核实": "已受理，监督员正在去现场核实",
    "待立案": "已受理，等待立案",
    "待派遣": "已立案，正在派给责任部门",
    "处置中": "已派给{dept}，正在处置",
    "挂账": "{dept}需要较长时间处理，已挂账跟踪",
    "待核查": "{dept}已处置完毕，等待监督员现场核查",
    "待结案": "现场核查通过，等待结案",
    "已结案": "已处理完毕并结案",
    "已作废": "经核实不属于城市管理问题或情况不实，已作废",
    "不予受理": "不予受理",
    "已合并": "与同一问题的其他反映合并处理",
}


@dataclass(frozen=True)
class CaseView:
    number: str
    matter: str
    state: str
    words: str
    department: str | None
    address: str
    created_at: datetime
    after_photo: str | None = None

    def line(self) -> str:
        day = self.created_at.astimezone(LOCAL).strftime("%m-%d")
        return f"{self.number}（{day}）{self.matter or '待分类'}：{self.words}"

    def text(self) -> str:
        lines = [f"编号 {self.number}", f"事项：{self.matter or '待受理员分类'}"]
        if self.address:
            lines.append(f"地点：{self.address}")
        lines.append(f"进展：{self.words}")
        if self.after_photo:
            lines.append("处置后的现场照片见下图。")
        return "\n".join(lines)


def _view(session: Session, case: CaseFile) -> CaseView:
    events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.seq)).all()
    dept = session.get(Department, case.department_code) if case.department_code else None
    dept_name = dept.name if dept else "责任部门"
    words = STATE_WORDS.get(case.state, case.state).format(dept=dept_name)
    last = events[-1] if events else None
    if case.state in ("不予受理", "已作废") and last is not None:
        reason = (last.data or {}).get("reason") or last.note
        if reason:
            words += f"（原因：{reason}）"
    if case.state == "已合并" and case.duplicate_of:
        words += f"，请查询编号 {case.duplicate_of}"
    photo = None
    if case.state == "已结案":
        shots = [e.attachments[0] for e in events if e.action in AFTER_PHOTO_ACTIONS and e.attachments]
        photo = shots[-1] if shots else None
    return CaseView(
        case.number,
        case.matter_name,
        case.state,
        words,
        dept.name if dept else None,
        case.address,
        case.created_at,
        photo,
    )


def my_cases(engine: Engine, channel: str, user: str, limit: int = 5) -> list[CaseView]:
    """The newest cases of this user's reports on this channel."""
    with Session(engine) as session:
        cases = session.exec(
            select(CaseFile)
            .where(CaseFile.id.in_(_own(channel, user)))
            .order_by(CaseFile.created_at.desc())
            .limit(limit)
        ).all()
        return [_view(session, c) for c in cases]


def my_case(engine: Engine, channel: str, user: str, number: str) -> CaseView | None:
    """One case by number, if one of this user's reports became it or one of their cases was merged into it;
    otherwise None (no hint that it exists)."""
    with Session(engine) as session:
        case = session.exec(select(CaseFile).where(CaseFile.number == number)).first()
        if case is None:
            return None
        own = select(CaseFile.id).where(
            CaseFile.id.in_(_own(channel, user)),
            or_(CaseFile.id == case.id, and_(CaseFile.state == "已合并", CaseFile.duplicate_of == number)),
        )
        return _view(session, case) if session.exec(own).first() is not None else None


def _own(channel: str, user: str):
    return select(Report.case_id).where(Report.channel == channel, Report.sender == user, Report.case_id.is_not(None))


def may_see_photo(engine: Engine, channel: str, user: str, sha256: str) -> bool:
    """A photo this user sent, or the after-photo of one of their closed cases."""
    with Session(engine) as session:
        reports = session.exec(select(Report).where(Report.channel == channel, Report.sender == user)).all()
        if any(m.get("sha256") == sha256 for r in reports for m in r.media):
            return True
        case_ids = {r.case_id for r in reports if r.case_id is not None}
        if not case_ids:
            return False
        for case in session.exec(select(CaseFile).where(CaseFile.id.in_(case_ids))).all():
            view = _view(session, case)
            if view.after_photo == sha256:
                return True
        return False


def case_number(engine: Engine, case_id: int) -> str | None:
    with Session(engine) as session:
        case = session.get(CaseFile, case_id)
        return case.number if case else None
