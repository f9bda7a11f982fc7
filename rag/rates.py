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

from rag.answer_fit import CITATION_MARKS

# Days in each period; a month is a twelfth of a year, so month ↔ year converts by exactly 12.
_DAYS = {"day": 1.0, "week": 7.0, "month": 365.0 / 12.0, "year": 365.0}
_PERIOD_WORDS = {
    "day": "day",
    "daily": "day",
    "week": "week",
    "weekly": "week",
    "month": "month",
    "monthly": "month",
    "year": "year",
    "yearly": "year",
    "annually": "year",
    "annual": "year",
}
_PERIOD = r"(?:(?:a|per|each|every)\s+(?P<per>day|week|month|year)\b|(?P<ly>daily|weekly|monthly|yearly|annually)\b)"
_ASKED = re.compile(
    r"\b(?:per|a|each|every)\s+(day|week|month|year)\b|\b(daily|weekly|monthly|yearly|annually|annual)\b",
    re.IGNORECASE,
)
_SCALES = {"": 1.0, "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
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
        asked = {_PERIOD_WORDS[(m.group(1) or m.group(2)).lower()] for m in _ASKED.finditer(question)}
        text = CITATION_MARKS.sub(" ", answer)
        if len(asked) != 1 or _ASKED.search(text):
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
        given = {_PERIOD_WORDS[(m.group("per") or m.group("ly")).lower()] for m in found}
        (wanted,) = asked
        if len(given) != 1 or wanted in given:
            return None
        (period,) = given
        nouns = {(m.group("noun") or "").strip() for m in found}
        noun = f" {nouns.pop()}" if len(nouns) == 1 and not currency_of(figure) else ""
        factor = _DAYS[wanted] / _DAYS[period]
        if factor == 365.0 / 12.0 or factor == 12.0 / 365.0:
            return None  # day ↔ month: months differ in length, so no exact ratio
        value = float(figure.group("number").replace(",", "")) * _SCALES[scale.lower()] * factor
        currency = currency_of(figure)
        quoted = f"{currency}{figure.group('number')}{' ' + scale if scale else ''}{noun}"
        factor_text = _plain(factor) if factor >= 1 else f"1/{_plain(1 / factor)}"
        operator = "×" if factor >= 1 else "÷"
        shown_factor = factor_text if factor >= 1 else _plain(1 / factor)
        converted, converted_number = _scaled(value, currency)
        exact = abs(float(shown_factor) - round(float(shown_factor))) < 1e-9 and float(converted_number) * (
            _SCALES[_scale_word(converted)]
        ) == round(value, 6)
        about = "" if exact else "About "
        text = f"{about}{converted}{noun} a {wanted}: {quoted} a {period} {operator} {shown_factor} {cites}."
        text = text[0].upper() + text[1:]
        return Conversion(text, frozenset({converted_number, figure.group("number").replace(",", ""), shown_factor}))


def currency_of(figure: re.Match[str]) -> str:
    """The currency sign of an amount, or ''."""
    return figure.group("currency") or ""


def _scale_word(amount: str) -> str:
    return next((word for word in ("trillion", "billion", "million") if amount.endswith(word)), "")


def _plain(value: float) -> str:
    return str(round(value)) if abs(value - round(value)) < 1e-9 else f"{value:.2f}".rstrip("0").rstrip(".")


def _scaled(value: float, currency: str) -> tuple[str, str]:
    """The value written with the largest scale word that keeps it ≥ 1, to three significant figures, and its
    number as `rag.grounding.terms` reads it."""
    for word, size in (("trillion", 1e12), ("billion", 1e9), ("million", 1e6)):
        if value >= size:
            number = f"{value / size:.3g}"
            return f"{currency}{number} {word}", number
    number = f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    return f"{currency}{number}", number.replace(",", "")
