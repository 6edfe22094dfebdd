"""The grounding scanner's reading of worked-out numbers and of negations said other ways:
sums, conversions and durations an answer derives from its context are supported; a
changed number stays flagged."""

from __future__ import annotations

import pytest

from bastion.guard.base import ScanContext
from bastion.guard.scanners.output import _grounding_negation as negation
from bastion.guard.scanners.output import _grounding_numbers as numbers
from bastion.guard.scanners.output._grounding_arithmetic import derived
from bastion.guard.scanners.output.grounding import Grounding


@pytest.mark.parametrize(("claim", "support", "expected"), [
    # one step of arithmetic after a cue, with the claim's own operand
    ("So having two flues swept would set you back £110.", "Sweeping costs £55 a flue.",
     {"2", "110"}),
    ("Each pitch is 10 by 12 metres, which gives you 120 square metres.",
     "Pitches measure 10 m by 12 m.", {"120"}),
    ("For four players you'd pay £80, which comes to £20 each.",
     "A room costs £80 for up to four players.", {"20"}),
    # a ratio between two numbers of the support
    ("Adults pay £18 and juniors half that.", "Adult ticket £18; junior ticket £9.", {"0.5"}),
    # conversions into the unit the claim names
    ("That is -0.4 °F.", "Seeds are stored at -18 °C.", {"0.4"}),
    ("It is kept at 70 to 80 °C, which is 158 to 176 °F.", "The sauna runs at 70-80 °C.",
     {"158", "176"}),
    ("That's about 5 feet 6 inches.", "He stood about 1.68 m tall.", {"5", "6"}),
    ("In miles per hour that's roughly 25 to 31 mph.", "Force 6 is 39-49 km/h.", {"25", "31"}),
    # a duration between two years
    ("They spent six years, from 1792 to 1798, on the survey.", "The survey ran from 1792 "
     "to 1798.", {"6"}),
    # the calendar's constants, rounded results, metric prefixes
    ("Paying yearly at $149.90 works out at about $12.49 a month.",
     "Pro costs $14.99 a month or $149.90 a year.", {"12.49"}),
    ("About 550 litres make a 40 kg wheel, so roughly 14 litres a kilo.",
     "Each 40 kg wheel needs 550 litres of milk.", {"14"}),
    ("It is 10,935 metres deep, so nearly 11 km.", "It is 10,935 metres deep.", {"11"}),
    ("It is 10,935 metres deep, so exactly 12 km.", "It is 10,935 metres deep.", set()),
    # no cue: a changed number is not explained away, nor is a small chance difference
    ("You have to book it for at least three hours.", "Minimum booking is two hours; the "
     "deposit is £5.", set()),
    ("Keep it 10 cm from walls, so the air can flow.", "Keep it 20 cm from walls and 30 cm "
     "from furniture.", set()),
    ("The fee is £60, which is the same as before.", "The fee is £55.", set()),
])
def test_derived_numbers(claim: str, support: str, expected: set[str]) -> None:
    assert derived(claim, support) == expected


def test_shares_and_half_units_read_as_numbers() -> None:
    assert numbers.numbers("Every session lasts an hour and a half.") == {"1.5"}
    assert numbers.converted("Every session lasts an hour and a half.",
                             "Sessions last 90 minutes.") == {"1.5"}
    assert numbers.converted("Swap a fifth of the water.", "Change 20% of the water.") == {
        "0.2"}


@pytest.mark.parametrize(("claim", "context", "flip"), [
    # "-less" and "non-" words say no; a run of them says it once
    ("Radon is a gas you can't see or smell.", "Radon is a colourless, odourless gas.",
     False),
    ("Radon is not a colourless gas.", "Radon is a colourless, odourless gas.", True),
    ("You won't get the fee back.", "Entry fees are non-refundable.", False),
    # "at no extra cost" is free
    ("Hook-ups come with the pitch fee at no extra cost.", "Hook-ups are included in the "
     "pitch fee.", False),
    # "not with anything else" and "nobody else" say "only"
    ("You need barbless hooks, because release isn't allowed with anything else.",
     "Release is permitted only with barbless hooks.", False),
    ("Only the depositors can take them out, and nobody else can.",
     "Only depositors can withdraw them.", False),
    # a purpose is no denial
    ("Take off your rings so they can't scratch the bowls.",
     "Remove rings, which could scratch the bowls.", False),
    # a list item and a reason after "as" are clauses of their own
    ("Jeans won't do: you need a collared shirt and tailored shorts or trousers.",
     "Smart dress is required: collared shirts, tailored shorts or trousers, no denim.",
     False),
    ("Pay by card or transfer, as cheques aren't taken any more.",
     "Pay by card or transfer; we no longer accept cheques.", False),
    ("Pay by card or transfer, as cheques are still taken.",
     "Pay by card or transfer; we no longer accept cheques.", True),
    # ", and <subject> <verb>" and a dash open clauses of their own
    ("Cows eat local forage, and silage or fermented feed isn't allowed.",
     "Cows are fed local forage; silage and fermented feeds are prohibited.", False),
    ("Cows eat local forage, and silage or fermented feed is allowed.",
     "Cows are fed local forage; silage and fermented feeds are prohibited.", True),
    ("Shoes must be black leather \u2014 trainers and boots aren't allowed.",
     "Shoes: black leather; trainers and boots are not permitted.", False),
    # "without booking an appointment", "stop paying", the same negated condition
    ("You can walk in without booking an appointment.", "No appointment is needed.", False),
    ("Tell us if you stop paying tax.", "Tell us if you no longer pay tax.", False),
    ("If you don't pay, you'll get a £120 penalty.",
     "If you do not pay, a penalty of £120 will be issued.", False),
    ("If you pay, you'll get a £120 penalty.",
     "If you do not pay, a penalty of £120 will be issued.", True),
    # "do X, or Y" against "Y when not X"
    ("Label each bag, or the driver may refuse it.",
     "Drivers may refuse luggage that is not labelled.", False),
])
def test_negation_said_other_ways(claim: str, context: str, flip: bool) -> None:
    assert negation.negation_flip(claim, context) is flip


def test_a_computed_total_passes_and_a_wrong_one_is_flagged() -> None:
    scanner = Grounding()
    docs = ScanContext(direction="output", documents=(
        "Chimney sweeping costs £55 per flue, and every visit includes a smoke test.",))
    right = scanner.scan("Sweeping costs £55 per flue, so two flues come to £110.", docs)
    wrong = scanner.scan("Sweeping costs £55 per flue, so two flues come to £120.", docs)
    assert not right.spans
    assert [s.label for s in wrong.spans] == ["unsupported-number"]


def test_the_users_own_figures_are_given_not_invented() -> None:
    scanner = Grounding()
    rules = ("Any module mark below 40% is a fail. Marks from 35% to 39% may be compensated "
             "if the average for the year is at least 45%.",)
    answer = "A mark of 37% counts as a fail, but it may be compensated."
    alone = scanner.scan(answer, ScanContext(direction="output", documents=rules))
    asked = scanner.scan(answer, ScanContext(
        direction="output", documents=rules,
        prompt="I got 37% in statistics and my average is 52%. Do I have to resit?"))
    assert [s.label for s in alone.spans] == ["unsupported-number"]
    assert not asked.spans
    # a figure the user did not state is still flagged
    wrong = scanner.scan("A mark of 33% may be compensated.", ScanContext(
        direction="output", documents=rules, prompt="I got 37%. Do I have to resit?"))
    assert [s.label for s in wrong.spans] == ["unsupported-number"]
