"""A rate the sources give per one period, asked for per another: converted by the calendar, not refused.

"Roughly how much … per year?" over "estimated at $300 million monthly": the small model copies "$300 million",
which the period check (`rag.answer_fit`) cannot fault because the draft names no period, and which is wrong by a
factor of twelve. When the draft's figure is the one the cited text states with a period, and the question asks
for another, the figure is converted by the fixed ratio of the two periods and the answer shows the conversion:
"About $3.6 billion a year: $300 million a month × 12 [1]." Every figure in it is either quoted or computed here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.answer_fit import CITATION_MARKS, PERIOD_NAMES, periods

# Days in each period; a month is a twelfth of a year, so month ↔ year converts by exactly 12.
_DAYS = {"day": 1.0, "week": 7.0, "month": 365.0 / 12.0, "year": 365.0}
_PERIOD = r"(?:(?:a|per|each|every)\s+(?P<per>day|week|month|year)\b|(?P<ly>daily|weekly|monthly|yearly|annually)\b)"
SCALES = {"": 1.0, "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_AMOUNT = re.compile(
    r"(?P<currency>[$€£])?(?P<number>\d[\d,]*(?:\.\d+)?)(?:\s+(?P<scale>thousand|million|billion|trillion))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Conversion:
    """The converted answer and the figures it states (quoted and computed), for the evidence check."""

    text: str
    numbers: frozenset[str]


class RateConversion:
    """Converts the draft's per-period figure to the period the question asks for."""

    def run(self, question: str, answer: str, sources: Sequence[str], cites: str) -> Conversion | None:
        """The conversion, or None when the question asks for no single period, the draft states a period itself, or
        the cited text does not give the draft's one figure with exactly one other period."""
        asked = periods(question)
        text = CITATION_MARKS.sub(" ", answer)
        if len(asked) != 1 or periods(text):
            return None
        amounts = [m for m in _AMOUNT.finditer(text) if not re.match(r"\s*%", text[m.end() :])]
        if len(amounts) != 1:
            return None
        figure = amounts[0]
        number = re.escape(figure.group("number"))
        scale = figure.group("scale") or ""
        # The figure, its scale, at most one word for what it counts ("10 cars a day"), then the period.
        stated = re.compile(
            rf"(?<![\d,.]){number}(?![\d,]|\.\d)"
            + (rf"\s+{scale}" if scale else "")
            + rf"(?P<noun>[ \t]+(?!(?:a|per|each|every)\b)[A-Za-z]+)?[ \t]+{_PERIOD}",
            re.IGNORECASE,
        )
        found = [m for s in sources for m in stated.finditer(s)]
        given = {PERIOD_NAMES[(m.group("per") or m.group("ly")).lower()] for m in found}
        (wanted,) = asked
        if len(given) != 1 or wanted in given:
            return None
        (period,) = given
        nouns = {(m.group("noun") or "").strip() for m in found}
        currency = figure.group("currency") or ""
        noun = f" {nouns.pop()}" if len(nouns) == 1 and not currency else ""
        if {wanted, period} == {"day", "month"}:
            return None  # months differ in length: no exact ratio
        factor = _DAYS[wanted] / _DAYS[period]
        value = float(figure.group("number").replace(",", "")) * SCALES[scale.lower()] * factor
        quoted = f"{currency}{figure.group('number')}{' ' + scale if scale else ''}{noun}"
        # A larger period multiplies ("× 12"), a smaller one divides ("÷ 7"): the factor shown is always ≥ 1.
        operator, shown_factor = ("×", _plain(factor)) if factor >= 1 else ("÷", _plain(1 / factor))
        converted, converted_number, scale_size = scaled(value, currency)
        whole_factor = float(shown_factor).is_integer()
        about = "" if whole_factor and float(converted_number) * scale_size == round(value, 6) else "About "
        text = f"{about}{converted}{noun} a {wanted}: {quoted} a {period} {operator} {shown_factor} {cites}."
        text = text[0].upper() + text[1:]
        return Conversion(text, frozenset({converted_number, figure.group("number").replace(",", ""), shown_factor}))


def _plain(value: float) -> str:
    return str(round(value)) if abs(value - round(value)) < 1e-9 else f"{value:.2f}".rstrip("0").rstrip(".")


def scaled(value: float, currency: str) -> tuple[str, str, float]:
    """The value written with the largest scale word that keeps it ≥ 1, to three significant figures; its number
    as `rag.grounding.terms` reads it; and the scale's size."""
    for word, size in (("trillion", 1e12), ("billion", 1e9), ("million", 1e6)):
        if value >= size:
            number = f"{value / size:.3g}"
            return f"{currency}{number} {word}", number, size
    number = f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    return f"{currency}{number}", number.replace(",", ""), 1.0
