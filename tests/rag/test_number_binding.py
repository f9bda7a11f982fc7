"""A short numeric answer must be the number of the clause the question is about (`rag.number_binding`).

The sentences are invented; the article's own cases (70% for the microelectronics, 2003 for DeTrani's later
posts, $240 billion for 2021) were seen with the real model and are checked through the whole checker at the end."""

from __future__ import annotations

import pytest

from rag.checking import AnswerChecker
from rag.number_binding import NumberBinding, clauses
from tests.conftest import ARTICLE as ARTICLE_PATH
from tests.conftest import passage_of as passage

ARTICLE = ARTICLE_PATH.read_text(encoding="utf-8")

SHARES = "The ministry said that about 40% of the wheat and 85% of the barley the country buys come from Canada."
POSTS = (
    "Ann Lee is a former mayor of Springfield, a former ambassador to Chile (1998-2001) and a former chair of "
    "the Harbor Commission."
)
SALES = "Sales reached a record $50 million in 2020, an increase of 25% since 2018 before the merger."


def test_a_number_only_piece_belongs_to_the_clause_after_it() -> None:
    assert clauses("On Dec. 25, 1991, Mikhail Gorbachev resigned as president.") == [
        "On Dec. 25 1991 Mikhail Gorbachev resigned as president."
    ]


def test_a_list_of_names_shares_the_figure_of_its_last_item() -> None:
    # SQuAD: "When did Denmark join the EU?" → 1972 was withheld as belonging to "Norway in 1972".
    treaty = (
        "More member states have joined through accession treaties, from the UK, Ireland, Denmark and Norway in "
        "1972 (though Norway did not end up joining), Greece in 1979 and Austria, Finland and Sweden in 1994 (though "
        "again Norway failed to join)."
    )
    assert clauses(treaty)[1] == "from the UK Ireland Denmark Norway in 1972 (though Norway did not end up joining)"
    assert NumberBinding().run("When did Denmark join?", "1972 [1].", [treaty]).problem is None
    assert NumberBinding().run("When did Finland join?", "1994 [1].", [treaty]).problem is None


def test_the_neighbouring_figure_is_corrected_to_the_one_asked_about() -> None:
    result = NumberBinding().run("What share of the barley comes from Canada?", "40% [1].", [SHARES])
    assert result.corrected == "85% [1]." and result.problem is None


def test_the_figure_asked_about_is_left_alone() -> None:
    assert NumberBinding().run("What share of the wheat comes from Canada?", "40% [1].", [SHARES]).corrected is None
    assert NumberBinding().run("What share of the barley comes from Canada?", "85% [1].", [SHARES]).problem is None


def test_a_year_from_a_parallel_item_of_a_list_is_withheld() -> None:
    question = "In what year did Ann Lee become chair of the Harbor Commission?"
    assert NumberBinding().run(question, "1998 [1].", [POSTS]).problem is not None
    # The item the year belongs to is answered.
    assert NumberBinding().run("When was Ann Lee ambassador to Chile?", "1998 [1].", [POSTS]).problem is None


@pytest.mark.parametrize("period", ["1998-2001 [1].", "1998 – 2001 [1]."])
def test_a_period_from_a_parallel_item_of_a_list_is_withheld(period: str) -> None:
    question = "In what year did Ann Lee become chair of the Harbor Commission?"
    assert NumberBinding().run(question, period, [POSTS]).problem is not None
    result = NumberBinding().run("When was Ann Lee ambassador to Chile?", period, [POSTS])
    assert result.problem is None and result.corrected is None


def test_a_period_is_never_corrected_to_a_single_neighbouring_year() -> None:
    text = "Ann Lee chaired the Harbor Commission in 2005, after a term as ambassador to Chile (1998-2001)."
    # A single year answer is corrected to the neighbouring clause's year …
    assert NumberBinding().run("In what year did Ann Lee chair the Harbor Commission?", "1998 [1].", [text]).corrected
    # … a period is withheld: "2005-2001" would be nonsense.
    result = NumberBinding().run("In what year did Ann Lee chair the Harbor Commission?", "1998-2001 [1].", [text])
    assert result.corrected is None and result.problem is not None


@pytest.mark.parametrize(
    ("question", "text"),
    [
        # The date is a modifier between commas, not a parallel item: the question's verb is elsewhere.
        (
            "In what year did Deng agree to share intelligence?",
            "Deng Xiaoping, who, during his January 1979 visit to the U.S., agreed to expand cooperation in sharing "
            "intelligence.",
        ),
        ("In what year did Gorbachev resign?", "On Dec. 25, 1991, Mikhail Gorbachev resigned as president."),
    ],
)
def test_a_date_that_modifies_the_clause_asked_about_stays(question: str, text: str) -> None:
    result = NumberBinding().run(question, f"{'1979' if '1979' in text else '1991'} [1].", [text])
    assert result.problem is None and result.corrected is None


def test_a_figure_stated_for_another_year_is_withheld() -> None:
    result = NumberBinding().run("What were sales worth in 2018?", "$50 million [1].", [SALES])
    assert result.problem is not None and "another year" in result.problem
    assert NumberBinding().run("What were sales worth in 2020?", "$50 million [1].", [SALES]).problem is None


def test_a_longer_answer_is_left_to_the_evidence_check() -> None:
    answer = "The ministry says 40% of the wheat bought abroad comes from Canada [1]."
    result = NumberBinding().run("What share of the barley comes from Canada?", answer, [SHARES])
    assert result.corrected is None and result.problem is None


class TestThroughTheChecker:
    def test_the_article_s_microelectronics_share_is_corrected(self) -> None:
        evidence = passage(ARTICLE[ARTICLE.index("Former Secretary") : ARTICLE.index("come from China.") + 16])
        question = "What share of the microelectronics Russia imports come from China?"
        verdict = AnswerChecker(None).run("70% [1].", question, [evidence])
        assert verdict.abstain_reason is None and verdict.text == "90% [1]."

    def test_a_share_of_something_the_sentence_does_not_name_is_not_corrected(self) -> None:
        # Seen with the real model on the gold set (unanswerable): "70%" for the drones, "corrected" to the
        # microelectronics' 90% because that clause alone names Russia.
        evidence = passage(ARTICLE[ARTICLE.index("Former Secretary") : ARTICLE.index("come from China.") + 16])
        question = "What percentage of Russia's drones are built with Chinese components?"
        assert AnswerChecker(None).run("70% [1].", question, [evidence]).abstain_reason == "off_question"

    def test_detrani_s_envoy_years_do_not_date_his_later_post(self) -> None:
        start = ARTICLE.index("Joseph R. DeTrani is")
        evidence = passage(ARTICLE[start : ARTICLE.index("Center.", start) + 7])
        question = "In what year did DeTrani become director of the National Counterproliferation Center?"
        assert AnswerChecker(None).run("2003 [1].", question, [evidence]).abstain_reason == "off_question"
        # The real model's other draft for it, and for the year he joined the CIA: the envoy post's whole period.
        assert AnswerChecker(None).run("2003-2006 [1].", question, [evidence]).abstain_reason == "off_question"
        joined = "In what year did Joseph DeTrani join the CIA?"
        assert AnswerChecker(None).run("2003-2006 [1].", joined, [evidence]).abstain_reason == "off_question"
