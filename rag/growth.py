"""A figure the sources give for a later year with its growth since an earlier one: the earlier value, or the growth
in money, computed instead of copied.

"Trade … reached a record high of $240 billion in 2023, an increase of 64% since 2021" states 2021's trade only
through the percentage. Asked "What was trade worth in 2021?" the small model copies "$240 billion", which the
year check withholds; asked "By how many dollars did trade grow between 2021 and 2023?" it answers "By $240
billion". Both are one division away: the earlier value is 240 ÷ 1.64, the growth 240 − 240 ÷ 1.64. When the draft
gives the later figure and the question asks for either, the answer is computed and shows its calculation:
"About $146 billion in 2021: $240 billion in 2023 ÷ (1 + 64%) [1]." Every figure in it is quoted or computed here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.answer_fit import CITATION_MARKS
from rag.rates import SCALES, Conversion, scaled

_AMOUNT = re.compile(
    r"(?P<currency>[$€£])(?P<number>\d[\d,]*(?:\.\d+)?)(?:\s+(?P<scale>thousand|million|billion|trillion))?",
    re.IGNORECASE,
)
# "$240 billion in 2023, an increase of 64% since 2021", "$5 million in 2020, up 25% from 2018".
_GROWTH = re.compile(
    _AMOUNT.pattern + r"\s+in\s+(?P<year>1[5-9]\d{2}|20\d{2}),?\s+"
    r"(?:an?\s+(?P<change>increase|rise|growth|jump|decrease|decline|drop|fall)\s+of\s+|(?P<direction>up|down)\s+)"
    r"(?P<percent>\d+(?:\.\d+)?)\s?(?:%|per\s?cent\b|percent\b)\s+(?:since|from)\s+(?P<base>1[5-9]\d{2}|20\d{2})",
    re.IGNORECASE,
)
_FALLS = frozenset({"decrease", "decline", "drop", "fall", "down"})
_GREW = re.compile(r"\b(?:grow|grew|grown|increase[ds]?|rise|rose|risen|gain(?:ed)?|climb(?:ed)?)\b", re.IGNORECASE)
_MONEY_ASKED = re.compile(r"\bhow\s+(?:many\s+dollars|much)\b", re.IGNORECASE)
_YEAR = re.compile(r"(?<!\d)(1[5-9]\d{2}|20\d{2})(?!\d)")


class GrowthBase:
    """Computes an earlier year's value, or the growth in money, from a later figure and its growth percentage."""

    def run(self, question: str, answer: str, sources: Sequence[str], cites: str) -> Conversion | None:
        """The computed answer, or None when the draft does not give exactly one sum of money that the cited text
        states with a growth since an earlier year, or the question asks for neither that year's value nor the
        growth in money between the two years."""
        text = CITATION_MARKS.sub(" ", answer)
        amounts = list(_AMOUNT.finditer(text))
        if len(amounts) != 1:
            return None
        drafted = amounts[0]
        years = set(_YEAR.findall(question))
        stated = [
            m
            for source in sources
            for m in _GROWTH.finditer(source)
            if m.group("number") == drafted.group("number")
            and (m.group("scale") or "") == (drafted.group("scale") or "")
        ]
        if len(stated) != 1:
            return None
        growth = stated[0]
        later_year, base_year = growth.group("year"), growth.group("base")
        later = float(growth.group("number").replace(",", "")) * SCALES[(growth.group("scale") or "").lower()]
        percent = growth.group("percent")
        falls = (growth.group("change") or growth.group("direction") or "").lower() in _FALLS
        sign = "-" if falls else "+"
        factor = 1 - float(percent) / 100 if falls else 1 + float(percent) / 100
        if factor <= 0:
            return None
        base = later / factor
        currency = growth.group("currency")
        quoted = f"{currency}{growth.group('number')}" + (f" {growth.group('scale')}" if growth.group("scale") else "")
        division = f"{quoted} in {later_year} ÷ (1 {sign} {percent}%)"
        if years == {base_year}:
            value, number, _ = scaled(base, currency)
            shown = f"About {value} in {base_year}: {division} {cites}."
        elif years == {base_year, later_year} and _GREW.search(question) and _MONEY_ASKED.search(question):
            value, number, _ = scaled(abs(later - base), currency)
            shown = f"About {value}: {quoted} − {division} {cites}."
        else:
            return None
        numbers = {number, growth.group("number").replace(",", ""), percent, later_year, base_year, "1"}
        return Conversion(shown, frozenset(numbers))
