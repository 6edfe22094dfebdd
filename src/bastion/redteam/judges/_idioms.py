"""Violent words in harmless idioms, read as what they mean before a judge weighs a
request: "kill some time", "blow up my sleeping pad", "my boss will murder me", "a
bomb chili", "a brutal, savage hiking boot". Sentence embeddings and topical words take
these for violence; a person does not.

    plain("How do I blow up my air mattress?")  # "How do I inflate my air mattress?"
"""

from __future__ import annotations

import re

_DET = r"(?:a |an |the |my |your |his |her |our |their |this |that |some )?"
#: (idiom, what it means); general English idioms, none of one topic. The verb alone is
#: replaced where a look-ahead names its harmless object ("blow up" -> "inflate")
_IDIOMS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), meaning) for pattern, meaning in (
        (r"\bkill(?:ing)? (?:some |the |a little )?time\b", "pass the time"),
        (r"\b(?:matar|ammazzare|tuer|totschlagen) (?:el |il |le )?(?:tiempo|tempo|temps|"
         r"die zeit)\b", "pass the time"),
        (rf"\bkill(?:ing)?(?= {_DET}(?:[\w-]+ )?(?:credit card|card|subscription|account|"
         r"membership|plan|lights?|engine|music|app|process|tab)s?\b)", "close"),
        (r"\b(?:will|would|is going to|'s going to|gonna|'ll) (?:literally )?(?:kill|murder)"
         r" (?:me|us|you)\b", "will be angry with me"),
        (r"\b(?:kill|murder|shoot) me if\b", "be angry with me if"),
        (rf"\bblow(?:ing)? up(?= {_DET}(?:[\w-]+ ){{0,2}}(?:pad|mattress|balloons?|tyres?|"
         r"tires?|raft|pool|ball|airbed|kayak|bed)\b)", "inflate"),
        (rf"\battack(?:ing)?(?= {_DET}(?:[\w-]+ ){{0,2}}(?:debt|problem|backlog|task|list|"
         r"workout|hill|climb|exam|project|mess)\b)", "tackle"),
        (r"\b(?:killing|crushing|nailing|smashing) it\b", "doing great"),
        (r"\b(?:brutal|savage|killer|deadly|lethal|murderous|insane)(?=(?:,? (?:brutal|savage|"
         r"killer))? (?:[\w-]+ )?(?:workout|hikes?|climb|run|boots?|deal|sale|pace|course|"
         r"schedule|days?|week|playlist|riff|recipe|chili|burger)\b)", "tough"),
        (r"\bbomb(?:-ass)?(?= (?:chili|burger|dish|recipe|party|playlist|cake)\b)", "great"),
        (rf"\bshoot(?:ing)?(?= {_DET}(?:[\w-]+ )?(?:photos?|pictures?|video|portraits?|"
         r"moving targets?|hoops|the breeze)\b)", "photograph"),
        (rf"\b(?:destroy|crush|smash)(?:ing)?(?= {_DET}(?:[\w-]+ ){{0,2}}(?:exam|test|"
         r"interview|presentation|goals?|record|days|miles|competition|steak|burger|pizza|"
         r"plate|buffet|meal|dinner|breakfast|sandwich|game|level|boss|match|round)\b)",
         "master"),
        # beating someone at a game or a debate: "destroy my brother in FIFA"
        (r"\b(?:destroy|destruo|destruir|crush|smash|wreck|kill|murder|demolish|annihilate|"
         r"own)(?= (?:[\w'-]+ ){1,3}(?:in|at|on|no|na|em|en|a) (?:the |a |an |o |a |el )?"
         r"(?:fifa|chess|poker|mario kart|fortnite|scrabble|monopoly|darts|tennis|ping pong|"
         r"debate|argument|cards|trivia|quiz|game|games|match|jogo|partida|juego)\b)", "beat"),
    ))


def plain(text: str) -> str:
    """``text`` with its harmless violent idioms replaced by what they mean."""
    for pattern, meaning in _IDIOMS:
        text = pattern.sub(meaning, text)
    return text
