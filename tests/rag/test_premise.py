"""The question's premise must be in the cited documents (`rag.premise`). The questions are of SQuAD 2.0's
unanswerable kind, which the real model answered from the nearest sentence: "How many Englishmen won the Battle of
Carillon?" got "3,600 [1]." from a paragraph about the French who won it."""

from __future__ import annotations

from index.types import Document
from rag.checking import AnswerChecker
from rag.premise import QuestionPremise, question_figures, question_names
from tests.conftest import passage_of

CARILLON = (
    "In 1758 the British mounted an attack on Fort Carillon with 16,000 men. Montcalm's 3,600 French troops "
    "defeated them outside the fort. The British withdrew to the south."
)
ENVOY = (
    "Céloron's expedition reached the Ohio in 1749. Old Briton did not receive him warmly and refused to end trade "
    "with the British."
)


def checker_over(*documents: Document) -> AnswerChecker:
    by_id = {document.doc_id: document for document in documents}
    return AnswerChecker(None, premise=QuestionPremise(by_id.get))


def premise_over(*documents: Document) -> QuestionPremise:
    return QuestionPremise({document.doc_id: document for document in documents}.get)


def document_of(text: str) -> Document:
    """`text` as document "d", the document `passage_of` passages belong to."""
    return Document("d", "A history", "history.txt", text)


def test_a_name_the_document_never_mentions_withholds_the_answer() -> None:
    passage, checker = passage_of(CARILLON), checker_over(document_of(CARILLON))
    verdict = checker.run("3,600 [1].", "How many Englishmen won the Battle of Carillon?", [passage])
    assert verdict.abstained and verdict.abstain_reason == "unmentioned"
    shown = checker.run("3,600 [1].", "How many French troops won at Carillon?", [passage])
    assert not shown.abstained and shown.text == "3,600 [1]."
    # A checker that cannot read documents does not check names.
    assert not AnswerChecker(None).run("3,600 [1].", "How many Englishmen won at Carillon?", [passage]).abstained


def test_a_figure_the_document_never_mentions_withholds_the_answer() -> None:
    passage, checker = passage_of(CARILLON), checker_over(document_of(CARILLON))
    assert checker.run("16,000 [1].", "How many men attacked the fort in 1759?", [passage]).abstained
    assert not checker.run("16,000 [1].", "How many men attacked the fort in 1758?", [passage]).abstained
    premise = premise_over(document_of(CARILLON))
    assert premise.unmentioned("How many men attacked the fort in the 1750s?", [passage]) == []
    assert premise.unmentioned("How many men attacked it in the 18th century?", [passage]) == []
    assert premise.unmentioned("How many men attacked the fort in the 1760s?", [passage]) == ["1760"]


def test_the_whole_document_is_searched_not_only_the_passage() -> None:
    # The passage is the document's second sentence; the question's name is in its first.
    document = Document("carillon", "Carillon", "carillon.txt", CARILLON)
    start = CARILLON.index("Montcalm")
    end = CARILLON.index(" The British withdrew")
    passage = passage_of(CARILLON[start:end], doc_id="carillon").model_copy(update={"start": start, "end": end})
    verdict = checker_over(document).run("3,600 [1].", "How many French troops beat the 16,000 men?", [passage])
    assert not verdict.abstained
    # A document removed since retrieval leaves its passages: they alone do not mention the 16,000.
    removed = checker_over()
    assert removed.run("3,600 [1].", "How many French troops beat the 16,000 men?", [passage]).abstained


def test_slips_and_accents_in_longer_names_are_tolerated_short_names_are_exact() -> None:
    passage = passage_of(ENVOY)
    premise = premise_over(document_of(ENVOY))
    assert premise.run("What was Old Briton's response to Celeron?", [passage], [ENVOY]) is None
    assert premise.run("Where did Celoron's expeditoin go?", [passage], [ENVOY]) is None
    assert premise.run("Did the Britons trade with Ohio?", [passage], [ENVOY]) is None
    assert premise.unmentioned("Did the French trade with Ohio?", [passage]) == ["French"]
    wwi = passage_of("The WWI expedition.")
    assert premise_over(document_of(wwi.text)).unmentioned("Where did the WWII expedition go?", [wwi]) == ["WWII"]


def test_a_negated_question_needs_a_negation_in_the_cited_sentence() -> None:
    premise = QuestionPremise()  # no documents: only the negation is checked
    passage = passage_of(ENVOY)
    problem = premise.run("Which army did the British not defeat?", [passage_of(CARILLON)], [CARILLON])
    assert problem is not None and problem.negation_missing and not problem.unmentioned
    assert premise.run("What did Old Briton not do?", [passage], [ENVOY.split(". ")[1]]) is None
    assert premise.run("What didn't Old Briton end?", [passage], [ENVOY.split(". ")[1]]) is None


def test_names_are_capitalised_words_inside_the_sentence() -> None:
    assert question_names("Who married Cnut the Great?") == ["Cnut", "Great"]
    assert question_names("What happened to Radcliffe's graduate schools during WWII?") == ["Radcliffe", "WWII"]
    # The first word, and function words capitalised in a title, are not names.
    assert question_names("When did The Times move?") == ["Times"]
    assert question_names('What does "On the Origin" say?') == ["Origin"]
    figures = question_figures("What wars did France fight in the 1600s, after 2,000 men left, in the 3rd wave?")
    assert [(f.text, f.period_prefix) for f in figures] == [("1600", "16"), ("2000", None)]
    (century,) = question_figures("Which 19th-century treaties?")
    assert century.mentioned({"1858"}) and not century.mentioned({"1958", "19"}) and century.mentioned({"19th"})


def test_acronyms_aliases_and_regions_count_as_mentioned() -> None:
    text = (
        "In World War I the Ottoman Empire sided with Germany. Decades later the Union of Soviet Socialist Republics "
        "and China signed a treaty in Peking, and Huguenots settled in Scandinavia. The U.S. protested, and so did "
        "the general secretary of the company."
    )
    passage, premise = passage_of(text), premise_over(document_of(text))
    for question in (
        "Who did the Ottoman empire ally with in WW I?",  # an acronym split by a space
        "When did the USSR sign?",  # an acronym of the document's name
        "What did Beijing sign?",  # a capital for its country
        "How did the Kremlin respond?",  # a seat of government for the country it stands for
        "When did the United States protest?",  # a name for the document's acronym
        "Who settled in Northern European states?",  # a region the document names country by country
        "Did the GS of the company protest?",  # initials of words the document writes in lower case
    ):
        assert premise.unmentioned(question, [passage]) == [], question
    assert premise.unmentioned("What did Tokyo sign?", [passage]) == ["Tokyo"]
