"""The 12319 call flow through the FastAGI server, driven by a fake Asterisk on loopback and a scripted recogniser:
reports, corrections, hand-overs, queries, hang-ups at every step, many calls at once."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from sqlmodel import Session, select

from core.cases import SYSTEM
from core.intake import Incoming
from core.models import Report
from ivr.prompts import PromptSet
from tests.ivr.fakes import Press, Say, ScriptedSpeech, Silence, tone_pcm, wav_pcm

PROBLEM = "人民路88号门口的井盖没了"
PLACE = "人民路88号"
_refs = itertools.count(1)


def ref() -> str:
    return f"test-{next(_refs)}.{id(object())}"


def reports(runtime, channel_ref: str) -> list[Report]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(Report).where(Report.channel == "hotline", Report.channel_ref == channel_ref)))


def report_script(speech: ScriptedSpeech, problem: str = PROBLEM, place: str = PLACE, confirm: str = "1") -> list:
    return [Press("1"), Say(speech.say(problem)), Say(speech.say(place)), Press(confirm)]


async def test_a_report_by_voice_gets_a_receipt_number(ivr, ivr_runtime):
    server, asterisk, hotline = await ivr()
    speech = hotline.speech
    problem_pcm, place_pcm = speech.say(PROBLEM), speech.say(PLACE)
    uid = ref()
    log = await asterisk.call(
        [Press("1"), Say(problem_pcm), Say(place_pcm), Press("1")], callerid="13912345678", uniqueid=uid
    )

    [report] = reports(ivr_runtime, uid)
    assert report.sender == "13912345678"
    assert report.text == PROBLEM and report.address == PLACE
    case, _ = ivr_runtime.loop.get(log.digits_said[0], SYSTEM)
    assert case.id == report.case_id and case.source == "hotline"
    # both recordings are attached, and they are what the caller said
    audio = [wav_pcm(ivr_runtime.attachments.open(m["sha256"])) for m in report.media]
    assert audio == [problem_pcm, place_pcm]
    assert all(m["kind"] == "audio" and m["media_type"] == "audio/wav" for m in report.media)
    # the caller heard what was understood: the 事项 and the 社区 the report was filed with
    code = report.classification["code"]
    assert report.classification["decision"] != "out_of_scope"
    names = log.names
    assert names[names.index("understood") + 1] == f"matter-{code}"
    assert names[names.index("place_found") + 1] == f"place-{report.place['grid']['code'][:12]}"
    assert names[:2] == ["welcome", "menu"]
    assert names[-2:] == ["receipt_after", "goodbye"]
    assert log.ended == "ivr-hangup" and log.steps_left == 0
    assert server.outcomes["reported"] == 1 and server.active == 0


async def test_the_recording_is_transcribed_while_the_caller_talks(ivr):
    _server, asterisk, hotline = await ivr()
    speech = hotline.speech
    script = [Press("1"), Say(speech.say(PROBLEM, tone_pcm(1, 3.0))), Say(speech.say(PLACE)), Press("1")]
    log = await asterisk.call(script, uniqueid=ref(), write_delay=0.15)
    problem_stream = next(s for s in speech.streams if s.grammar is None)
    before_end = [t for t, _n in problem_stream.chunks if t < log.record_replied_at[1]]
    assert len(before_end) >= 2  # audio reached the recogniser in pieces before the recording was over
    assert sum(n for _t, n in problem_stream.chunks) == 2 * 3 * 8000


async def test_two_asks_the_caller_again_and_files_the_second_version(ivr, ivr_runtime):
    _server, asterisk, hotline = await ivr()
    speech = hotline.speech
    uid = ref()
    script = [*report_script(speech, confirm="2")[:-1], Press("2")]
    script += [Say(speech.say("有人在路边摆摊卖水果")), Say(speech.say("解放路和人民路交叉口")), Press("1")]
    log = await asterisk.call(script, uniqueid=uid)
    [report] = reports(ivr_runtime, uid)
    assert report.text == "有人在路边摆摊卖水果" and report.address == "解放路和人民路交叉口"
    assert "redo" in log.names and log.names.count("ask_problem") == 2
    assert log.digits_said == [ivr_runtime.loop.get(log.digits_said[0], SYSTEM)[0].number]


async def test_zero_at_the_menu_hands_over_to_a_seat_without_a_report(ivr, ivr_runtime):
    _server, asterisk, _hotline = await ivr()
    uid = ref()
    log = await asterisk.call([Press("0", barge=True)], uniqueid=uid)
    assert log.variables == {"GRIDLINE_ACTION": "handover", "GRIDLINE_REASON": "caller"}
    assert log.ended == "ivr-closed"  # no HANGUP: the dialplan goes on to the queue
    assert log.names[-1] == "handover"
    assert reports(ivr_runtime, uid) == []


async def test_a_hand_over_after_speaking_files_what_was_said_for_the_seat(ivr, ivr_runtime):
    _server, asterisk, hotline = await ivr()
    uid = ref()
    log = await asterisk.call(report_script(hotline.speech, confirm="0"), uniqueid=uid)
    [report] = reports(ivr_runtime, uid)
    assert log.variables["GRIDLINE_ACTION"] == "handover"
    assert log.variables["GRIDLINE_REASON"] == "caller"
    case = ivr_runtime.loop.get(log.variables["GRIDLINE_CASE"], SYSTEM)[0]
    assert case.id == report.case_id
    assert report.text == PROBLEM and report.classification["top"]  # the transcript and the guess are there
    assert len(report.media) == 2
    assert log.digits_said == []


async def test_silence_hands_over_and_files_nothing(ivr, ivr_runtime):
    _server, asterisk, _hotline = await ivr()
    uid = ref()
    log = await asterisk.call([Press("1"), Silence(), Silence()], uniqueid=uid)
    assert log.variables["GRIDLINE_REASON"] == "silence"
    assert log.names.count("ask_problem_again") == 1
    assert reports(ivr_runtime, uid) == []


async def test_silence_at_the_menu_twice_hands_over(ivr):
    _server, asterisk, _hotline = await ivr()
    log = await asterisk.call([Silence(), Silence()], uniqueid=ref())
    assert log.names.count("menu") == 2
    assert log.variables["GRIDLINE_REASON"] == "silence"


async def test_a_problem_not_understood_twice_goes_to_a_seat_with_its_transcript(ivr, ivr_runtime):
    _server, asterisk, hotline = await ivr()
    speech = hotline.speech
    uid = ref()
    script = [Press("1"), Say(speech.say("喂喂你好")), Say(speech.say("我要查话费"))]  # nothing for 城管
    log = await asterisk.call(script, uniqueid=uid)
    assert log.variables["GRIDLINE_REASON"] == "not_understood"
    [report] = reports(ivr_runtime, uid)
    assert report.text == "我要查话费"
    assert report.classification["decision"] == "out_of_scope"
    assert log.variables["GRIDLINE_CASE"] == ivr_runtime.loop.get(log.variables["GRIDLINE_CASE"], SYSTEM)[0].number


async def test_a_place_not_found_is_asked_once_more_then_handed_over(ivr, ivr_runtime):
    _server, asterisk, hotline = await ivr()
    speech = hotline.speech
    uid = ref()
    script = [Press("1"), Say(speech.say(PROBLEM)), Say(speech.say("火星基地")), Say(speech.say("月球背面"))]
    log = await asterisk.call(script, uniqueid=uid)
    assert log.names.count("ask_place_again") == 1
    assert log.variables["GRIDLINE_REASON"] == "place"
    [report] = reports(ivr_runtime, uid)
    assert report.text == PROBLEM and report.address == "月球背面"


async def test_a_place_asked_again_is_confirmed_the_second_time(ivr, ivr_runtime):
    _server, asterisk, hotline = await ivr()
    speech = hotline.speech
    uid = ref()
    script = [Press("1"), Say(speech.say(PROBLEM)), Say(speech.say("火星基地")), Say(speech.say(PLACE)), Press("1")]
    log = await asterisk.call(script, uniqueid=uid)
    [report] = reports(ivr_runtime, uid)
    assert report.address == PLACE and log.digits_said


async def test_yes_can_be_said_instead_of_pressed(ivr, ivr_runtime):
    _server, asterisk, hotline = await ivr()
    speech = hotline.speech
    uid = ref()
    script = [*report_script(speech)[:-1], Say(speech.say("对的"))]
    log = await asterisk.call(script, uniqueid=uid)
    assert reports(ivr_runtime, uid) and log.digits_said
    confirm_stream = speech.streams[-1]
    assert confirm_stream.grammar is not None and "确认" in confirm_stream.grammar  # a restricted grammar


async def test_a_key_ends_the_description(ivr, ivr_runtime):
    _server, asterisk, hotline = await ivr()
    speech = hotline.speech
    uid = ref()
    script = [Press("1"), Say(speech.say(PROBLEM), end="#"), Say(speech.say(PLACE)), Press("1")]
    await asterisk.call(script, uniqueid=uid)
    assert reports(ivr_runtime, uid)[0].text == PROBLEM


@pytest.fixture
def filed_case(ivr_runtime):
    from datetime import UTC, datetime

    report, _ = ivr_runtime.intake.submit(
        Incoming("hotline", ref(), datetime.now(UTC), sender="13800000000", text="路灯晚上不亮", address=PLACE)
    )
    return report.case_number


async def test_menu_two_tells_the_state_of_a_case_in_plain_words(ivr, filed_case):
    _server, asterisk, _hotline = await ivr()
    log = await asterisk.call([Press("2"), Press(filed_case + "#")], uniqueid=ref())
    assert log.names[-2:] == ["state_received", "goodbye"]
    assert log.ended == "ivr-hangup"


async def test_menu_two_by_voice_uses_a_digit_grammar(ivr, filed_case):
    _server, asterisk, hotline = await ivr()
    spoken = "".join("零一二三四五六七八九"[int(d)] for d in filed_case)
    log = await asterisk.call([Press("2"), Silence(), Say(hotline.speech.say(spoken))], uniqueid=ref())
    assert log.names[-2:] == ["state_received", "goodbye"]
    assert set(hotline.speech.streams[-1].grammar) >= set("零一二三四五六七八九")


async def test_menu_two_with_an_unknown_number(ivr):
    _server, asterisk, _hotline = await ivr()
    log = await asterisk.call([Press("2"), Press("99990101000")], uniqueid=ref())
    assert log.names[-2:] == ["case_not_found", "goodbye"]


async def test_hanging_up_at_any_point_leaves_no_half_made_report(ivr, ivr_runtime, tmp_path):
    server, asterisk, hotline = await ivr()
    full = await asterisk.call(report_script(hotline.speech), uniqueid=ref())
    confirmed_at = max(i for i, c in enumerate(full.commands) if c.startswith("RECORD FILE"))
    for k in range(len(full.commands)):
        uid = ref()
        log = await asterisk.call(
            report_script(hotline.speech), uniqueid=uid, hangup_at=k, hangup_notice="after" if k % 2 else "before"
        )
        filed = reports(ivr_runtime, uid)
        assert len(filed) == (1 if k > confirmed_at else 0), (k, full.commands[k])
        assert log.ended == "caller"
        assert len(log.commands) - k <= 2, log.commands[k:]  # at most a status probe after the hang-up
        await asyncio.sleep(0)
        assert server.active == 0
        assert list((tmp_path / "calls").glob("*")) == []  # the call's recordings are gone
    assert server.outcomes["hangup"] + server.outcomes["reported"] == len(full.commands) + 1  # and the full call


async def test_without_a_speech_model_every_call_goes_to_a_seat(ivr):
    _server, asterisk, _hotline = await ivr(speech=None)
    log = await asterisk.call([Press("1", barge=True)], uniqueid=ref())
    assert log.names == ["welcome", "no_speech", "handover"]
    assert log.variables["GRIDLINE_REASON"] == "no_speech"
    assert not any(c.startswith("RECORD FILE") for c in log.commands)


async def test_a_recogniser_that_takes_too_long_is_not_waited_for(ivr, ivr_runtime):
    _server, asterisk, hotline = await ivr(speech=ScriptedSpeech(delay=2.0), speech_timeout=0.2)
    speech = hotline.speech
    uid = ref()
    log = await asterisk.call([Press("1"), Say(speech.say(PROBLEM)), Say(speech.say(PROBLEM))], uniqueid=uid)
    assert log.variables["GRIDLINE_REASON"] == "not_understood"
    assert len(reports(ivr_runtime, uid)[0].media) == 1  # the seat still gets the recording


async def test_a_failing_intake_still_reaches_a_person(ivr, monkeypatch):
    _server, asterisk, hotline = await ivr()

    def broken(incoming):
        raise RuntimeError("database down")

    monkeypatch.setattr(hotline.intake, "submit", broken)
    log = await asterisk.call(report_script(hotline.speech), uniqueid=ref())
    assert log.variables["GRIDLINE_ACTION"] == "handover"
    assert log.variables["GRIDLINE_REASON"] == "error"


async def test_a_refused_command_hands_the_call_over(ivr):
    _server, asterisk, _hotline = await ivr()
    log = await asterisk.call([Press("2"), Press("1#")], uniqueid=ref(), refuse=["GET DATA"])
    assert log.variables == {"GRIDLINE_ACTION": "handover", "GRIDLINE_REASON": "error"}


async def test_many_calls_at_once(ivr, ivr_runtime):
    server, asterisk, hotline = await ivr()
    uids = [ref() for _ in range(40)]
    logs = await asyncio.gather(
        *(asterisk.call(report_script(hotline.speech), uniqueid=u, callerid=f"139{i:08d}") for i, u in enumerate(uids))
    )
    numbers = [log.digits_said[0] for log in logs]
    assert len(set(numbers)) == 40
    for i, uid in enumerate(uids):
        [report] = reports(ivr_runtime, uid)
        assert report.sender == f"139{i:08d}"
    assert server.outcomes["reported"] == 40 and server.active == 0


async def test_closing_the_server_ends_calls_in_progress(ivr):
    server, asterisk, hotline = await ivr(speech=ScriptedSpeech(delay=5.0), speech_timeout=10)
    call = asyncio.create_task(asterisk.call([Press("1"), Say(hotline.speech.say(PROBLEM))], uniqueid=ref()))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if server.active:
            break
    await asyncio.wait_for(server.close(), 5)
    log = await asyncio.wait_for(call, 5)
    assert server.active == 0
    assert log.ended in ("ivr-closed", "caller")


def test_missing_prompts_stop_the_start_with_a_clear_error(make_hotline, tmp_path):
    from ivr.prompts import PromptsMissing

    hotline = make_hotline(prompts=PromptSet(tmp_path / "nothing"))
    with pytest.raises(PromptsMissing, match="gridline ivr prompts"):
        hotline.check()


def test_a_recorded_prompt_replaces_the_generated_one(prompt_set, tmp_path):
    prompts = PromptSet(tmp_path / "p")
    (prompts.tts).mkdir(parents=True)
    (prompts.recorded).mkdir(parents=True)
    (prompts.tts / "welcome.wav").write_bytes(b"x")
    assert prompts.path("welcome") == str(prompts.tts / "welcome")
    (prompts.recorded / "welcome.gsm").write_bytes(b"x")
    assert prompts.path("welcome") == str(prompts.recorded / "welcome")
    assert Path(prompt_set.path("menu") + ".wav").is_file()


class WelcomeElsewhere(PromptSet):
    """A welcome prompt Asterisk cannot find (removed after start-up, or on a path it cannot see)."""

    def path(self, name: str) -> str:
        return "/nowhere/welcome" if name == "welcome" else super().path(name)


async def test_a_prompt_asterisk_cannot_play_is_skipped_not_taken_for_a_hang_up(ivr, ivr_runtime, prompt_set):
    _server, asterisk, hotline = await ivr(prompts=WelcomeElsewhere(prompt_set.root))
    uid = ref()
    log = await asterisk.call(report_script(hotline.speech), uniqueid=uid)
    assert log.commands[2] == "CHANNEL STATUS"  # the -1 is checked against the channel's state
    assert log.digits_said and reports(ivr_runtime, uid)


def test_long_silences_are_kept_from_the_recogniser():
    from ivr.flow import Squelch

    speech = tone_pcm(7, 1.0)
    silence = b"\x00\x00" * 8000 * 2
    squelch = Squelch()
    passed = b"".join(squelch(piece) for piece in (silence[:3001], silence[3001:], speech, silence))
    assert speech in passed  # every sample of the speech, in one piece
    before, after = passed.split(speech)
    assert len(before) <= 2 * 8000 * 0.3 and len(after) <= 2 * 8000 * 0.6 + 320
    assert Squelch()(silence) == b""
