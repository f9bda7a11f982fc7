"""Computed evidence checks: an answer is final only when its cited text can be shown to support it.

Three checks, cheapest first:
- calculations the model writes (`1989 - 1979 = 10`) are recomputed with a safe evaluator, each operand must
  be quoted from a passage, and a wrong result is corrected;
- every number, date and name the answer adds must occur in a cited passage;
- the answer's other content words must mostly occur there, in a sentence that is about the question.
What no computed check can settle is left to a calibrated judge (`rag.checking.SupportJudge`).
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from index.sentences import Span, sentence_spans
from rag.stopwords import STOPWORDS as _IGNORED_WORDS
from rag.types import Passage

_WORD = re.compile(r"[A-Za-z]+(?:['’][a-z]+)?|\d[\d,]*(?:\.\d+)?")
MONTHS = {
    m[:3]
    for m in [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ]
}
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90"}
# Sentences that address the model rather than the reader (any language's imperative is not caught by a regex;
# this is one layer of several, see the README's security section).
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override|ignoriere|ignora|ignorez)\b.{0,80}\b(instructions?|rules|prompts?|"
    r"guidelines|anweisungen|instrucciones|consignes)\b"
    r"|\b(reply|respond|answer|say|output|state|antworte\w*|responde\w*|contesta\w*|r[ée]ponds|r[ée]pondez|"
    r"rispondi)\b.{0,80}\b(only|exactly|ausschlie(ß|ss)lich|nur|solamente|[úu]nicamente|seulement|solo)\b"
    r"|\b(answer|reply|respond)\s+(to\s+)?(every|all|any|each)\s+(questions?|quer(y|ies)|requests?)"
    r"|\b(system|developer)\s*(:|instruction|prompt|message|override|policy)"
    r"|\b(assistant|ai|model|llm|chatbot|whoever answers|anyone asks|if (anyone|someone|somebody|a user) asks)\b"
    r".{0,60}\b(must|should|answer|reply|say|state)\b"
    # Orders that took over answers in the injection corpus (eval/injection/, issue 10 S1) and their kin in the
    # other languages: reply-only, "you must answer", "whoever asks must be told", conditional orders, notes to
    # the assistant, "system:" lines, forged passage citations.
    r"|\b(ignor\w*)\b.{0,80}\b(istruzioni|instru[çc][õo]es|indica[çc][õo]es)\b"
    r"|\b(responda\w*|rispond\w*|r[ée]pond\w*|beantworte\w*|antworte\w*|contesta\w*)\b.{0,80}"
    r"\b(apenas|esclusivamente|exclusivamente|uniquement|soltanto)\b"
    r"|\b(du musst|you must|tu dois|vous devez|debes|devi|voc[êe] deve)\b.{0,80}"
    r"\b(beantwort\w*|antwort\w*|answer|reply|r[ée]pond\w*|respond\w*|rispond\w*)\b"
    r"|\b(whoever|anyone|chiunque|quienquiera|quiconque)\b.{0,80}\b(must|should|deve|debe|doit)\s+"
    r"(be\s+told|say|state|answer|reply|dire|decir|dizer)\b"
    r"|\b(si (alguien|quelqu'un) (pregunta|demande)|se (algu[ée]m|qualcuno) (perguntar|chiede)|wenn jemand fragt)\b"
    r"|\b(nota|note|hinweis|mensaje|mensagem|messaggio|instructions?|istruzioni|instrucciones)\s+(para|per|pour|"
    r"f[üu]r|to|for|[àa])\s+(el\s+|la\s+|il\s+|l'|den\s+|die\s+|o\s+|a\s+|any\s+|the\s+)?"
    r"(asistente|assistente|assistant|assistenten?|ia|ki|ai|chatbot|modelo|modello|mod[èe]le|sprachmodell)\b"
    r"|\b(sistema|syst[èe]me)\s*:|\byour only (reply|answer|response)\b"
    r"|\b(answer|reply|respond)\s+(to\s+)?(every|all|any|each)\s+(user\s+)?(messages?|users?)\b"
    r"|\bpassage\s*\[\d+\]\s*(says|states)\b|\bcite\s+(\[\d+\]|this\s+(passage|sentence))"
    r"|忽略(之前|以上|所有)|无视.{0,10}(指示|指令|规则)|系统\s*[:：]|给助手|你必须|必须回答|如果有人问|只回答",
    re.IGNORECASE,
)
# A computed amount may change scale ("$300 million a month × 12" is "$3.6 billion"): the scale word is no claim either.
_UNITS = (
    *("years", "year", "days", "day", "months", "month", "weeks", "week", "percent", "percentage", "points"),
    *("thousand", "million", "billion", "trillion"),
)
# How much better (coverage + half the question's words near the sentence) another passage must support an
# answer for its citation to move there: about two more of five question words near the supporting sentence.
RECITE_MARGIN = 0.2
_YEAR = re.compile(r"(?<!\d)(1\d{3}|20\d{2})(?!\d)")
_CALCULATION = re.compile(
    r"(?P<expr>\(?\s*-?\d[\d,]*(?:\.\d+)?\s*\)?(?:\s*[-+*/×x÷−–]\s*\(?\s*-?\d[\d,]*(?:\.\d+)?\s*\)?)+)"
    r"\s*=\s*(?P<result>-?\d[\d,]*(?:\.\d+)?)"
)
# A span of years written as a range, "(2003-2006)" or "1914–1918", and a duration "3 years" / "3-year".
_YEAR_RANGE = re.compile(r"(?<![\d,.])(?P<start>1\d{3}|20\d{2})\s*[-–]\s*(?P<end>1\d{3}|20\d{2})(?![\d,]|\.\d)")
_DURATION = re.compile(r"(?<![\d,.])(?P<n>\d+)(?:\s+|-)years?\b", re.IGNORECASE)
_OPERATORS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def normalise_number(token: str) -> str:
    """'1,000' → '1000', '12.50' → '12.5', 'ten' → '10'."""
    token = token.lower()
    if token in _NUMBER_WORDS:
        return _NUMBER_WORDS[token]
    digits = token.replace(",", "")
    if "." in digits:
        digits = digits.rstrip("0").rstrip(".")
    return digits


# British and American spellings of one word ("27 metres" in the passage, "27 meters" in the answer) must match.
_SPELLINGS = {"grey": "gray", "greys": "grays", "tonne": "ton", "tonnes": "tons", "aluminium": "aluminum"}
_TRE = re.compile(r"(?<=[a-z]{2})tre(s?)$")  # metre → meter, centre → center, theatre → theater
_OUR = re.compile(r"(?<=[a-z]{2})our(s|ed|ing|ful)?$")  # colour → color, honour → honor; not hour, four, your


def stem(word: str) -> str:
    """A crude stem that survives inflection, abbreviation and British spelling: 'agreed'~'agreement',
    'Feb.'~'February', 'metres'~'meters'."""
    word = word.lower().replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    word = _SPELLINGS.get(word, word)
    word = _OUR.sub(lambda m: "or" + (m.group(1) or ""), _TRE.sub(r"ter\1", word))
    if word[:3] in MONTHS:
        return word[:3]
    return word[:5]


def terms(text: str, whole_words: bool = False) -> tuple[set[str], set[str]]:
    """Content-word stems (or, with `whole_words`, the lower-cased words without a possessive ending) and normalised
    numbers of a text."""
    words: set[str] = set()
    numbers: set[str] = set()
    for token in _WORD.findall(text):
        lowered = token.lower()
        if token[0].isdigit() or lowered in _NUMBER_WORDS:
            numbers.add(normalise_number(token))
        else:
            word = lowered.replace("’", "'").removesuffix("'s") if whole_words else lowered
            if word not in _IGNORED_WORDS and len(word) > 1:
                words.add(word if whole_words else stem(word))
    return words, numbers


def shared_prefix(first: str, second: str) -> int:
    """How many letters two words share at their start."""
    return next(
        (i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b), min(len(first), len(second))
    )


def is_instruction(sentence: str) -> bool:
    """True for a sentence that gives the assistant orders instead of informing the reader."""
    return bool(_INSTRUCTION.search(sentence))


def safe_eval(expression: str) -> float:
    """Evaluate + - * / over number literals only; anything else raises ValueError."""
    cleaned = expression.replace(",", "").replace("×", "*").replace("÷", "/").replace("−", "-").replace("–", "-")
    cleaned = re.sub(r"(?<=\d)\s*x\s*(?=\d)", "*", cleaned)

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"not an arithmetic expression: {expression!r}")

    try:
        return walk(ast.parse(cleaned.strip(), mode="eval"))
    except (SyntaxError, ZeroDivisionError) as error:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from error


def _format_number(value: float) -> str:
    return str(round(value)) if abs(value - round(value)) < 1e-9 else f"{value:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Calculation:
    """A calculation found in an answer, recomputed."""

    expression: str
    stated: str
    computed: str
    operands: list[str]

    @property
    def correct(self) -> bool:
        """Whether the stated result, normalised, is the recomputed one."""
        return normalise_number(self.stated) == self.computed


def find_calculations(answer: str) -> list[Calculation]:
    """Every `a op b = c` in the answer, with its recomputed result; without one, a duration the answer gives
    with the year range it spans ("3 years: 2003-2006") is the calculation `2006 - 2003`."""
    found = []
    for match in _CALCULATION.finditer(answer):
        try:
            value = safe_eval(match.group("expr"))
        except ValueError:
            continue
        operands = [normalise_number(n) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", match.group("expr"))]
        found.append(Calculation(match.group("expr").strip(), match.group("result"), _format_number(value), operands))
    if not found:
        duration = _DURATION.search(answer)
        ranges = [m for m in _YEAR_RANGE.finditer(answer) if int(m.group("end")) > int(m.group("start"))]
        if duration is not None and len(ranges) == 1:
            start, end = ranges[0].group("start"), ranges[0].group("end")
            found.append(Calculation(f"{end} - {start}", duration.group("n"), str(int(end) - int(start)), [start, end]))
    return found


def correct_calculations(answer: str, calculations: Sequence[Calculation]) -> str:
    """Replace each wrong stated result (and the same number elsewhere in the answer) with the computed one."""
    for calculation in calculations:
        if not calculation.correct:
            answer = re.sub(rf"(?<![\d,.]){re.escape(calculation.stated)}(?![\d,]|\.\d)", calculation.computed, answer)
    return answer


@dataclass(frozen=True)
class SentenceEvidence:
    """How well one passage supports one answer sentence."""

    passage: int  # index into the passages
    span: Span  # the supporting sentence, in document offsets
    coverage: float  # share of the answer's new content words found in the passage
    numbers_found: bool  # every new number of the answer occurs in the passage
    on_topic: float  # share of the question's content words near the supporting sentence
    instruction: bool  # the supporting sentence gives orders
    years_found: bool = True  # every year the question names is stated where the answer comes from


@dataclass(frozen=True)
class Grounding:
    """The verdict on one answer: the evidence score and, per cited passage, the supporting sentence."""

    score: float
    supports: dict[int, Span] = field(default_factory=dict)
    unsupported_numbers: bool = False
    instruction: bool = False
    other_year: bool = False  # the supporting sentence is about another year than the question's


class EvidenceChecker:
    """Scores an answer against its cited passages with computable checks only."""

    def __init__(self, window: int = 1) -> None:
        self.window = window

    def passage_evidence(
        self,
        answer_sentence: str,
        question: str,
        passage: Passage,
        index: int,
        question_years: frozenset[str] = frozenset(),
    ) -> SentenceEvidence:
        """How well `passage` (number `index`, 0-based) supports one answer sentence: its sentence that best matches
        the answer's new words and numbers, with `window` sentences either side, scored on coverage, numbers,
        topic, instructions and (for `question_years`) the year it is about."""
        answer_words, answer_numbers = terms(answer_sentence)
        question_words, question_numbers = terms(question)
        new_words = answer_words - question_words
        new_numbers = answer_numbers - question_numbers
        spans = sentence_spans(passage.text)
        sentence_terms = [terms(passage.text[s.start : s.end]) for s in spans] or [(set(), set())]

        def weight(i: int) -> float:
            words, numbers = sentence_terms[i]
            # Operands of a computed answer are not new, but they still say where the answer comes from.
            return (
                2 * len(new_words & words)
                + 3 * len(new_numbers & numbers)
                + len(answer_numbers & numbers)
                + len(question_words & words)
            )

        def new_terms(i: int) -> int:
            words, numbers = sentence_terms[i]
            return len(new_words & words) + len(new_numbers & numbers)

        def window(i: int) -> range:
            # Evidence is local: the supporting sentence and its neighbours, not anything anywhere in a long passage.
            return range(max(0, i - self.window), min(len(sentence_terms), i + self.window + 1))

        def support(i: int) -> tuple[float, bool, float]:
            near = window(i)
            near_words = set().union(*(sentence_terms[j][0] for j in near))
            near_numbers = set().union(*(sentence_terms[j][1] for j in near))
            coverage = len(new_words & near_words) / len(new_words) if new_words else 1.0
            on_topic = len(question_words & near_words) / len(question_words) if question_words else 1.0
            return coverage, new_numbers <= near_numbers, on_topic

        # The supporting sentence is the one whose neighbourhood best supports what the answer adds (its numbers,
        # then its new words, then the question's words): an answer that repeats the question ("The Feb. 24 call
        # … was their second telephone exchange") must be found where "second" is, not where the question's words
        # cluster. Between neighbourhoods that support it equally, the one centred on more of the answer's new terms
        # wins (a title line that repeats the question's words, "Unidos da Serra samba school", must not win over
        # the sentence stating the answer), then the one weighing most.
        supports = [support(i) for i in range(len(sentence_terms))]
        best = max(
            range(len(sentence_terms)),
            key=lambda i: (supports[i][1], supports[i][0] + 0.5 * supports[i][2], new_terms(i), weight(i)),
            default=0,
        )
        near = window(best)
        coverage, numbers_found, on_topic = supports[best]
        # The sentence shown as the evidence is the one in that neighbourhood stating most of what the answer adds.
        stating = max(near, key=lambda i: (new_terms(i), weight(i)), default=best)
        if passage.retriever == "document":
            on_topic = 1.0  # the header passage is only given for questions about the document itself
        span = spans[stating] if spans else Span(0, len(passage.text))
        sentence = passage.text[span.start : span.end]
        return SentenceEvidence(
            years_found=self._states_years(question_years, sentence_terms, stating, near),
            passage=index,
            span=Span(passage.start + span.start, passage.start + span.end),
            coverage=coverage,
            numbers_found=numbers_found,
            on_topic=on_topic,
            instruction=is_instruction(sentence),
        )

    @staticmethod
    def _states_years(
        years: frozenset[str], sentence_terms: Sequence[tuple[set[str], set[str]]], best: int, near: range
    ) -> bool:
        """A year the question names ("trade in 2024") must be the supporting sentence's: stated by it, or,
        when it states none ("The conflict ended within two weeks"), by its neighbours or by the last earlier
        sentence that states one (the year the narrative is in). A sentence, or a narrative, in another year
        is about another time, however well its words match. No year anywhere before it: not decidable here."""
        if not years:
            return True

        def years_of(i: int) -> set[str]:
            return {n for n in sentence_terms[i][1] if _YEAR.fullmatch(n)}

        own = years_of(best)
        if own:
            return years <= own
        if years <= set().union(*(sentence_terms[i][1] for i in near)):
            return True
        for i in range(best - 1, -1, -1):
            earlier = years_of(i)
            if earlier:
                return years <= earlier
        return True

    def better_cited(self, sentence: str, question: str, passages: Sequence[Passage], cited: int) -> int | None:
        """The passage that supports this answer sentence clearly better than the one it cites (0-based), or None.

        A small model often cites a passage that merely mentions the answer ("China [2]" where [2] names China
        in passing and [1] says "China is Russia's largest trading partner"); the citation should point at the
        text that supports the answer to this question. The header passage is never a better target: it is
        given only for questions about the document, and it names the title's words whatever the question."""
        years = frozenset(_YEAR.findall(question))

        def rank(evidence: SentenceEvidence) -> tuple[bool, bool, bool, float]:
            fit = evidence.coverage + 0.5 * evidence.on_topic
            return (evidence.numbers_found, evidence.years_found, not evidence.instruction, fit)

        current = rank(self.passage_evidence(sentence, question, passages[cited], cited, years))
        best: tuple[tuple[bool, bool, bool, float], int] | None = None
        for i, passage in enumerate(passages):
            if i == cited or passage.retriever == "document":
                continue
            candidate = rank(self.passage_evidence(sentence, question, passage, i, years))
            clearly_better = candidate[:3] > current[:3] or (
                candidate[:3] == current[:3] and candidate[3] >= current[3] + RECITE_MARGIN
            )
            if clearly_better and (best is None or candidate > best[0]):
                best = (candidate, i)
        return best[1] if best else None

    def check(
        self,
        sentences: Sequence[tuple[str, list[int]]],
        question: str,
        passages: Sequence[Passage],
        computed_numbers: set[str] = frozenset(),  # type: ignore[assignment]
        calculated: bool = True,
    ) -> Grounding:
        """`sentences` are the answer's sentences with the (0-based) passages each cites; `computed_numbers` are
        known without being stated (a calculation's operands and result when `calculated`, or a count)."""
        scores: list[float] = []
        supports: dict[int, Span] = {}
        unsupported_numbers = instruction = other_year = False
        # A computed answer names its unit ("12 years: …"); the unit is the question's, not a claim to support.
        units = " ".join(_UNITS) if computed_numbers and calculated else ""
        question_with_results = f"{question} {' '.join(computed_numbers)} {units}"
        question_years = frozenset(_YEAR.findall(question)) - set(computed_numbers)
        for sentence, cited in sentences:
            words, numbers = terms(sentence)
            if not words and not numbers:
                continue
            candidates = [
                self.passage_evidence(sentence, question_with_results, passages[i], i, question_years) for i in cited
            ]
            if not candidates:
                scores.append(0.0)
                continue
            best = max(candidates, key=lambda e: (e.numbers_found, e.years_found, e.coverage + 0.5 * e.on_topic))
            supports.setdefault(best.passage, best.span)
            if computed_numbers:
                # A calculation over two passages is supported by a sentence in each.
                for evidence in candidates:
                    supports.setdefault(evidence.passage, evidence.span)
            unsupported_numbers |= not best.numbers_found
            other_year |= not best.years_found
            instruction |= best.instruction
            # Coverage says the words come from the passage; on_topic says the passage answers this question.
            scores.append(min(1.0, 0.7 * best.coverage + 0.3 * min(1.0, 2 * best.on_topic)))
        score = min(scores) if scores else 0.0
        if unsupported_numbers or instruction or other_year:
            score = min(score, 0.2)
        return Grounding(round(score, 4), supports, unsupported_numbers, instruction, other_year)
