"""A long message read as a letter: title, sentences, salutation and closing off, in the normal form."""

from __future__ import annotations

from nlp.letters import parts


def test_a_board_letter_has_its_title_and_sentences_without_salutation_or_closing():
    letter = parts(
        "A3区含浦镇马路卫生很差\n尊敬的胡书记：您好！镇上没有一台吸尘车。洒水车把泥巴冲到路边。望尽快处理，谢谢！此致敬礼！"
    )
    assert letter.title == "A3区含浦镇马路卫生很差"
    assert letter.sentences == ("镇上没有一台吸尘车。", "洒水车把泥巴冲到路边。", "望尽快处理")


def test_a_short_message_is_one_sentence_and_has_no_title():
    assert parts("井盖没了") == parts("  井盖没了 ")
    assert parts("井盖没了").title is None and parts("井盖没了").sentences == ("井盖没了",)


def test_a_long_first_line_is_body_not_title_and_short_pieces_join_the_sentence_before():
    long_line = "人民路上的垃圾桶已经满了好几天了没有人来清运，味道很大，" * 2
    letter = parts(long_line + "\n臭。真的是非常的臭！")
    assert letter.title is None
    assert letter.sentences[-1] == "真的是非常的臭!" and letter.sentences[0].endswith("臭。")
