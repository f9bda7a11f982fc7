"""Names news writing uses for one another: a country, its people, its capital and its seat of government
("Beijing" and "the Kremlin" for China's and Russia's governments, "American" beside "the U.S."). The question-premise
check (`rag.premise`) counts a name as mentioned when a document uses another name of the same group.

Kept to the larger countries and the metonyms news uses most; a name missing here is only checked more strictly
(the answer is withheld when its document never mentions it in any spelling), never shown wrongly.
"""

from __future__ import annotations

from functools import cache

_GROUPS: tuple[tuple[str, ...], ...] = (
    ("china", "chinese", "beijing", "prc", "zhongnanhai", "peking"),
    ("russia", "russian", "russians", "moscow", "kremlin"),
    ("soviet", "soviets", "ussr", "moscow", "kremlin"),
    ("ukraine", "ukrainian", "ukrainians", "kyiv", "kiev"),
    ("united states", "us", "usa", "america", "american", "americans", "washington", "white house", "pentagon"),
    ("britain", "british", "uk", "united kingdom", "london", "whitehall", "downing street", "england", "english"),
    ("france", "french", "paris", "elysee"),
    ("germany", "german", "germans", "berlin"),
    ("japan", "japanese", "tokyo"),
    ("india", "indian", "indians", "new delhi", "delhi"),
    ("north korea", "north korean", "pyongyang", "dprk"),
    ("south korea", "south korean", "seoul"),
    ("taiwan", "taiwanese", "taipei"),
    ("iran", "iranian", "iranians", "tehran"),
    ("israel", "israeli", "israelis", "jerusalem"),
    ("turkey", "turkish", "ankara"),
    ("italy", "italian", "italians", "rome"),
    ("spain", "spanish", "madrid"),
    ("poland", "polish", "poles", "warsaw"),
    ("belarus", "belarusian", "minsk"),
    ("canada", "canadian", "canadians", "ottawa"),
    ("mexico", "mexican", "mexicans"),
    ("brazil", "brazilian", "brasilia"),
    ("egypt", "egyptian", "egyptians", "cairo"),
    ("saudi arabia", "saudi", "saudis", "riyadh"),
    ("pakistan", "pakistani", "islamabad"),
    ("netherlands", "dutch", "amsterdam", "the hague", "holland"),
    ("switzerland", "swiss", "bern", "geneva"),
    ("european union", "eu", "brussels"),
    ("ireland", "irish", "dublin"),
    ("wales", "welsh"),
    ("denmark", "danish", "danes", "copenhagen"),
    ("sweden", "swedish", "swedes", "stockholm"),
    ("finland", "finnish", "finns", "helsinki"),
    ("thailand", "thai", "bangkok"),
    ("philippines", "filipino", "filipinos", "manila"),
    ("vietnam", "vietnamese", "hanoi"),
    ("greece", "greek", "greeks", "athens"),
)


@cache
def _groups_of() -> dict[str, tuple[tuple[str, ...], ...]]:
    by_name: dict[str, list[tuple[str, ...]]] = {}
    for group in _GROUPS:
        for name in group:
            by_name.setdefault(name, []).append(group)
    return {name: tuple(groups) for name, groups in by_name.items()}


def other_names(name: str) -> set[str]:
    """The other names of what `name` (lower case, without dots) names; empty when the table does not know it."""
    return {other for group in _groups_of().get(name, ()) for other in group if other != name}
