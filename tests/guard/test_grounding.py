"""The grounding output scanner: supported paraphrases pass, changed numbers, swapped names
and flipped negations are flagged, no context means no judgement, policy files build it,
and its accuracy on the shipped grounding set holds the documented numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.errors import ConfigError, InputError
from bastion.guard import Guard
from bastion.guard.base import ScanContext
from bastion.guard.grounding_set import (
    Item,
    dev_parts,
    flag_counts,
    load_grounding_set,
    sentence_scores,
)
from bastion.guard.policy import load_policy
from bastion.guard.scanners.output import _grounding_arithmetic as arithmetic
from bastion.guard.scanners.output import _grounding_calendar as calendar
from bastion.guard.scanners.output import _grounding_checks as checks
from bastion.guard.scanners.output import _grounding_dates as dates
from bastion.guard.scanners.output import _grounding_negation as negation
from bastion.guard.scanners.output import _grounding_numbers as numbers
from bastion.guard.scanners.output.grounding import Grounding
from bastion.guard.sentences import sentences

CONTEXT = ("The Aster K2 electric kettle holds 1.7 litres and boils a full load in about "
           "four minutes. The kettle switches itself off when the water boils. A removable "
           "limescale filter sits behind the spout and can be rinsed under the tap. Aster "
           "is based in Lyon. The Aster K2 comes with a two-year warranty.")
DOCS = ScanContext(direction="output", documents=(CONTEXT,))

#: (recall, false flag rate) documented in docs/guard/grounding.md, default settings, per
#: part of the dev split; the test allows a small tolerance for float rounding across
#: CPUs and library versions.
DOCUMENTED_DEV = {"original": (0.892, 0.013), "former_test": (0.811, 0.105)}
#: the same for the test split, once it has been evaluated and documented (None: not yet).
DOCUMENTED_TEST: tuple[float, float] | None = (0.696, 0.230)
TOLERANCE = 0.03


@pytest.fixture(scope="module")
def scanner() -> Grounding:
    return Grounding()


def test_supported_paraphrase_and_pleasantry_are_not_flagged(scanner: Grounding) -> None:
    answer = ("A full kettle comes to the boil in roughly four minutes. It turns itself off "
              "once the water is boiling. Let me know if you have other questions!")
    result = scanner.scan(answer, DOCS)
    assert result.verdict == "allow" and not result.spans
    assert result.reason.startswith("all 2 claim(s) supported")


@pytest.mark.parametrize(("sentence", "label"), [
    ("It holds 2.5 litres of water.", "unsupported-number"),
    ("The Aster K2 comes with a five-year warranty.", "unsupported-number"),
    ("Aster is based in Marseille.", "unsupported-name"),
    ("The limescale filter cannot be rinsed under the tap.", "negation-flip"),
])
def test_planted_errors_are_flagged(scanner: Grounding, sentence: str, label: str) -> None:
    answer = f"The kettle switches itself off when the water boils. {sentence}"
    result = scanner.scan(answer, DOCS)
    assert result.verdict == "flag" and result.score >= 0.5
    start = answer.index(sentence)
    assert [(s.start, s.end, s.label) for s in result.spans] == [
        (start, start + len(sentence), label)]
    assert result.reason.startswith("1 of 2 claim(s) unsupported")


def test_an_unrelated_claim_is_flagged_for_weak_support(scanner: Grounding) -> None:
    result = scanner.scan("Honey never spoils if it is kept sealed in a jar.", DOCS)
    assert [s.label for s in result.spans] == ["unsupported"]
    assert "weak support" in result.reason


def test_without_context_the_scanner_says_it_cannot_judge(scanner: Grounding) -> None:
    for context in (None, ScanContext(direction="output"),
                    ScanContext(direction="output", documents=("", "   "))):
        result = scanner.scan("The kettle holds 40 litres.", context)
        assert result.score == 0.0 and result.verdict == "allow" and not result.spans
        assert "cannot judge" in result.reason


def test_policy_file_builds_the_scanner(tmp_path: Path, scanner: Grounding) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("output:\n  - kind: grounding\n    action: review\n"
                    "    min_support: 1.0\n    number_scope: context\n", encoding="utf-8")
    guard = Guard(load_policy(path))
    result = guard.scan_output("The kettle holds 40 litres.", documents=[CONTEXT])
    assert result.verdict == "review"
    built = guard.policy.output.layers[0].scanner
    assert isinstance(built, Grounding)
    assert built.min_support == 1.0 and built.number_scope == "context"


@pytest.mark.parametrize("bad", [{"layers": 9}, {"number_scope": "nearby"},
                                 {"negation_overlap": 2.0}, {"cache_size": -1},
                                 {"check_names": "yes"}])
def test_bad_settings_are_refused_with_the_fix(tmp_path: Path, bad: dict[str, Any]) -> None:
    key, value = next(iter(bad.items()))
    path = tmp_path / "policy.yaml"
    path.write_text(f"output:\n  - kind: grounding\n    {key}: {value!r}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=key):
        load_policy(path)


def test_cached_context_gives_the_same_judgement() -> None:
    cached, fresh = Grounding(cache_size=8), Grounding(cache_size=0)
    answer = "It holds 1.7 litres. Aster is based in Paris."
    first = cached.scan(answer, DOCS)
    again = cached.scan(answer, DOCS)
    plain = fresh.scan(answer, DOCS)
    assert first.spans == again.spans == plain.spans
    assert abs(first.score - plain.score) < 1e-6
    assert len(cached._cache) <= 8


@settings(max_examples=25, deadline=None)
@given(text=st.text(max_size=200))
def test_spans_stay_inside_any_answer(scanner: Grounding, text: str) -> None:
    result = scanner.scan(text, DOCS)
    assert 0.0 <= result.score <= 1.0
    assert all(0 <= s.start < s.end <= len(text) for s in result.spans)


def test_symbolic_checks() -> None:
    assert checks.numbers("2,200 watts, four minutes, 4.50 euros, a five-year plan") == {
        "2200", "4", "4.5", "5"}
    assert checks.numbers("the AX3000 router") == set()
    assert checks.names("Erik the Red led it to Vinland.") == {"Red", "Vinland"}
    assert checks.names("Mark Antony became emperor.") == {"Mark", "Antony"}
    assert checks.names("mRNA vaccines work.") == set()
    assert checks.missing_names("Parisian crowds gathered.", checks.vocabulary("in Paris"))\
        == []
    assert negation.negated("Nothing, not even light, can escape.")
    assert not negation.negated("It comes without a contract.")
    assert negation.closest_clause("It has two Thunderbolt ports.",
                                   "It has two Thunderbolt ports, but no HDMI port.") == \
        "It has two Thunderbolt ports"
    assert not checks.has_claim("Let me know if you have any questions!")
    assert not checks.has_claim("Is there anything else I can do?")
    assert checks.has_claim("Thanks to its heater, it boils in 3 seconds.")


@pytest.mark.parametrize(("claim", "support", "same"), [
    ("Its first half hour is free.", "The first 30 minutes are free.", {"0.5"}),
    ("Claims are due within four weeks.", "Claims are due within 28 days.", {"4"}),
    ("It began in the 1300s.", "It began in the 14th century.", {"1300"}),
    ("It spread over two hundred years.", "It spread over two centuries.", {"200"}),
    ("Athletes from 24 nations took part.", "The committee met two years later.", set()),
])
def test_a_span_of_time_in_another_unit_is_the_same_number(claim: str, support: str,
                                                            same: set[str]) -> None:
    assert numbers.converted(claim, support) == same
    assert numbers.unit_changed(claim, support) == set()


def test_the_same_count_of_another_unit_is_a_changed_number() -> None:
    assert numbers.unit_changed("A bee lives about six months.",
                                "A bee lives about six weeks.") == {"6"}
    assert numbers.unit_changed("It has a 12-month contract.",
                                "It has a one-year contract.") == set()
    assert numbers.numbers("two hundred years, 1.5 million people") == {"200", "1500000"}


@pytest.mark.parametrize(("claim", "context", "flip"), [
    ("Loyalty Club members do not pay for return shipping.",
     "Return shipping is free for members of the Loyalty Club.", False),
    ("Return shipping is not free for members.",
     "Return shipping is free for members of the Loyalty Club.", True),
    ("Clothing that has not been worn can be returned.",
     "Customers may return unworn clothing within 30 days.", False),
    ("If a payment does not arrive within a week, the order is cancelled.",
     "Payment must arrive within 7 days, or the order is cancelled.", False),
    ("The order is not cancelled when a payment is late.",
     "Payment must arrive within 7 days, or the order is cancelled.", True),
    ("It costs 29 pounds a month with a 12-month contract.",
     "It costs 29 pounds a month with a 12-month contract, or 39 pounds with no contract.",
     False),
    # "exempt", "at no cost" and "avoid" say no without a negation word
    ("Small parcels don't attract duty.", "Small parcels are exempt from duty.", False),
    ("Rebooking won't cost you anything.", "You can rebook at no cost.", False),
    ("Do not run the pump dry.", "Avoid running the pump dry.", False),
    # a bound further on, an addition and a concession are no denials
    ("No player may enter more than three events.", "Each player may enter three events "
     "at most.", False),
    ("The fee isn't just for the ticket.", "The fee covers the ticket and a guide.", False),
    ("Lenses are replaced monthly, whether or not you wear them.",
     "Lenses are replaced monthly, even if you have not worn them.", False),
    # a reason or a consequence is read as a clause of its own
    ("There's no contract, so you can leave at any time.",
     "There is no contract; you can leave at any time.", False),
    ("Bags stay in the lodge, because bags can't go into the ice rooms.",
     "Bags are kept in the lodge; no bags are allowed in the ice rooms.", False),
    ("Hidden files aren't skipped by default.", "Hidden files are included by default.",
     False),
    ("Hidden files are skipped by default.", "Hidden files are included by default.", True),
])
def test_negation_flips(claim: str, context: str, flip: bool) -> None:
    assert negation.negation_flip(claim, context) is flip


def test_grounding_set_is_labelled_and_split_stably() -> None:
    everything = load_grounding_set("all")
    dev, test = load_grounding_set("dev"), load_grounding_set("test")
    assert len(everything) >= 89 and sum(len(i.sentences) for i in everything) >= 685
    assert {i.id for i in dev}.isdisjoint({i.id for i in test})
    assert len(dev) + len(test) == len(everything)
    assert {i.split for i in dev} == {"dev"} and {i.split for i in test} <= {"test"}
    parts = dev_parts(everything)
    assert len(parts["original"]) == 66 and len(parts["former_test"]) == 293
    assert not any(i.was_test for i in test)
    with pytest.raises(InputError, match="split"):
        load_grounding_set("train")


def test_a_former_test_answer_must_sit_in_dev(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import bastion.guard.grounding_set as grounding_set

    line = ('{"id": "x", "documents": ["A."], "split": "test", "was_test": true, '
            '"sentences": [{"text": "A.", "label": "supported", "kind": "verbatim"}]}')
    (tmp_path / "grounding.jsonl").write_text(line + "\n", encoding="utf-8")
    monkeypatch.setattr(grounding_set, "bundled", lambda name: tmp_path / name)
    with pytest.raises(InputError, match="was_test"):
        load_grounding_set("all")


def _rates(scanner: Grounding, items: list[Item]) -> tuple[float, float]:
    counts = flag_counts(sentence_scores(scanner, items), scanner.threshold)
    flagged, planted = counts["unsupported"]
    false, supported = counts["supported"]
    return flagged / planted, false / supported


@pytest.mark.parametrize("part", sorted(DOCUMENTED_DEV))
def test_dev_holds_the_documented_numbers(scanner: Grounding, part: str) -> None:
    recall, fpr = _rates(scanner, dev_parts(load_grounding_set("dev"))[part])
    documented_recall, documented_fpr = DOCUMENTED_DEV[part]
    assert abs(recall - documented_recall) <= TOLERANCE
    assert abs(fpr - documented_fpr) <= TOLERANCE


def test_test_split_holds_the_documented_numbers(scanner: Grounding) -> None:
    items = load_grounding_set("test")
    if not items or DOCUMENTED_TEST is None:
        pytest.skip("no evaluated test split in the grounding set yet")
    recall, fpr = _rates(scanner, items)
    assert recall >= DOCUMENTED_TEST[0] - TOLERANCE
    assert fpr <= DOCUMENTED_TEST[1] + TOLERANCE


def test_an_aside_to_the_reader_makes_no_claim(scanner: Grounding) -> None:
    vocabulary = checks.vocabulary(CONTEXT)
    assert checks.reader_aside("Wrap up warm!", vocabulary)
    assert checks.reader_aside("Please read the full leaflet before use.", vocabulary)
    assert not checks.reader_aside("The limescale filter can be rinsed!", vocabulary)
    assert not checks.reader_aside("Please note it boils in 9 minutes.", vocabulary)
    assert not checks.reader_aside("Each kettle comes with a free mug.", vocabulary)
    # the speaker's own voice or a word of taste, without the context's words
    assert checks.reader_aside("I hope your dad is feeling better soon.", vocabulary)
    assert checks.reader_aside("That's annoying, let's get it sorted.", vocabulary)
    assert checks.reader_aside("Sounds like a lovely outing.", vocabulary)
    assert not checks.reader_aside("I think it was made in Geneva.", vocabulary)  # a name
    assert not checks.reader_aside("It's worth knowing the kettle boils in 9 minutes.",
                                   vocabulary)  # a number
    answer = "The kettle switches itself off when the water boils. Have fun baking!"
    result = scanner.scan(answer, DOCS)
    assert result.verdict == "allow" and result.reason.startswith("all 1 claim(s)")


def test_names_are_read_where_they_can_be_names() -> None:
    assert checks.names("With Economy Light you get one bag.") == {"Economy", "Light"}
    assert checks.names("Norway holds the largest colony.") == set()
    assert checks.swapped_names("The parade is on Sunday.",
                                ["The boat parade on Saturday needs a ticket."]) == ["Sunday"]
    assert checks.swapped_names("The parade is on Sunday.",
                                ["The boat parade needs a ticket."]) == []
    assert checks.missing_names("The First Barons' War broke out.",
                                checks.vocabulary("the First Barons' War followed")) == []


def test_a_name_swapped_for_another_of_the_context_is_flagged(scanner: Grounding) -> None:
    context = ("The boat parade on Saturday needs a ticket costing 8 pounds. Entry to the "
               "waterfront is free. Extra buses run every ten minutes. The lights go off "
               "on Sunday night.")
    answer = "The boat parade takes place on Sunday."
    result = scanner.scan(answer, ScanContext(direction="output", documents=(context,)))
    assert [s.label for s in result.spans] == ["unsupported-name"]


@pytest.mark.parametrize(("claim", "context", "flip"), [
    ("The personal item must fit under the seat.",
     "It must fit under the seat, no larger than 40 by 30 centimetres.", False),
    ("It is named after the comedy group rather than the snake.",
     "Its name comes from the comedy group, not the snake.", False),
    ("There is no fee for leaving.", "You can leave at any time without an exit fee.",
     False),
    ("Meat can be added to the compost without problems.",
     "Meat should not be added to the compost.", True),
    ("You cannot renew a book if another member has reserved it.",
     "Books can be renewed unless another member has reserved them.", False),
    ("Pre-existing conditions are always covered.",
     "Pre-existing conditions are not covered unless declared.", True),
    ("The cafe stays open late.", "The cafe closes at five.", True),
    ("A ship on a storm tile keeps its cargo.", "A ship on a storm tile loses its cargo.",
     True),
    ("You have six hours from the start to finish.",
     "The course closes six hours after the start.", False),
    ("The Danube Delta is not a World Heritage Site.",
     "The Danube Delta is a UNESCO World Heritage Site.", True),
    ("Passwords must be at least 14 characters long.",
     "Passwords must be at least 14 characters long and may not reuse old ones.", False),
    ("Entry costs nothing, although the parade is ticketed.",
     "Entry is free, but the parade needs a ticket.", False),
    ("It turns off when lifted while empty.",
     "It switches off when it is lifted with no water inside.", False),
    ("The glass doesn't get as hot as a ceramic hob.",
     "The glass stays cooler than on a ceramic hob.", False),
    ("Caterpillars eat nothing but milkweed.", "Caterpillars feed only on milkweed.", False),
    ("Their metabolism almost stops.", "It cuts their metabolism to almost nothing.", False),
    ("Its garrison was auxiliary troops.",
     "It was garrisoned by auxiliary soldiers, not by legionaries.", False),
    ("Its garrison was legionaries.",
     "It was garrisoned by auxiliary soldiers, not by legionaries.", True),
    ("The spring journey north takes three generations.",
     "No single butterfly makes the trip: the spring journey north takes three "
     "generations.", False),
    ("Moving to a smaller plan is only possible once the contract has ended.",
     "You cannot move to a smaller plan until the contract ends.", False),
    ("Moving to a smaller plan is possible at any time.",
     "You cannot move to a smaller plan until the contract ends.", True),
    ("If you don't turn up, we charge the first night.",
     "No-shows are charged the first night.", False),
    ("Claims with no receipt are rejected.", "Claims without one are rejected.", False),
    ("If you can't make an appointment, give at least 24 hours' notice.",
     "Please give at least 24 hours' notice if you need to cancel.", False),
    ("If you do not register, you cannot enter.", "If you register, you can enter.", True),
    ("Online returns aren't due until 31 October.", "Online returns are due by 31 October.",
     False),
    ("It only takes effect at the end of the billing period.",
     "Cancelling takes effect at the end of the billing period and no refunds are given.",
     False),
    # a fragment about something else ("Penalty:") contradicts nothing
    ("Penalty: if you can't show a licence, a warden can fine you 100 euros.",
     "Wardens may fine anyone who cannot show a licence 100 euros.", False),
    # "and don't" opens a clause as "and do not" does
    ("Keep pets five metres back, and don't spray the bees with water.",
     "Keep pets 5 metres away, and do not spray the bees with water.", False),
    # a support pair: the clause that agrees may stand in its second sentence
    ("Some people have flu-like symptoms.",
     "Not everyone gets a rash. Some people also have flu-like symptoms.", False),
    ("Everyone gets the rash.", "Some people have flu-like symptoms. Not everyone gets a "
     "rash.", True),
])
def test_negation_reads_bounds_contrasts_conditions_and_opposites(
        claim: str, context: str, flip: bool) -> None:
    assert negation.negation_flip(claim, context) is flip


def test_clock_times_read_the_same_in_every_format() -> None:
    assert numbers.numbers("Check in from 3 pm, out by 11 am.") == numbers.numbers(
        "Check-in from 15:00, check-out by 11:00.") == {"3", "11"}
    assert numbers.numbers("It closes at 5:30 p.m.") == numbers.numbers("Closes 17:30") == \
        numbers.numbers("It closes at half past five.") == {"5.5"}
    assert numbers.numbers("Judging at 1.30 pm") == {"1.5"}
    assert numbers.numbers("The car park opens at 9 pm") != numbers.numbers("at 9.30 pm")
    assert numbers.numbers("Doors at quarter to six, midnight close") == {"5.75", "12"}
    assert numbers.numbers("It takes two and a half to three hours.") == {"2.5", "3"}
    assert numbers.numbers("a 3:2 ratio") == {"3", "2"}  # not a clock


def test_units_and_openers_are_not_names() -> None:
    assert checks.names("It runs at 26.5 C on a 9V battery with 15 GB.") == set()
    assert checks.names("Outside London, it costs more.") == {"London"}
    assert checks.names("Prices stay fixed until 31 May.") == {"May"}
    assert checks.missing_names("It needs a B in A-level Maths.",
                                checks.vocabulary("a B in Mathematics at A-level")) == []
    for pleasantry in ("I'm sorry to hear about the burn.", "See you at the pool!",
                       "Happy to explain the Volt 30 plan!",
                       "Here's an overview of the Dustra R7."):
        assert not checks.has_claim(pleasantry), pleasantry


def test_spelled_out_numbers_and_fractions() -> None:
    assert numbers.numbers("twenty-four hours on the twelfth") == {"24", "12"}
    assert numbers.numbers("three quarters of the seats, two-thirds full") == {
        "0.75", "0.6667"}
    assert numbers.converted("A game lasts three quarters of an hour.",
                             "A round takes about 45 minutes.") == {"0.75"}
    assert checks.content_words("three quarters of an hour") == {"hour"}


def test_sentences_without_run_on_cuts_keep_a_date_whole() -> None:
    text = "Prices stay fixed until 31 May. They are then reviewed."
    assert len(sentences(text, min_words=1)) == 3  # the run-on cut before "May"
    assert sentences(text, min_words=1, run_on=False) == [(0, 31), (32, len(text))]


def test_day_and_month_names_a_context_implies_are_known(scanner: Grounding) -> None:
    assert calendar.implied("Open Mon-Fri.") == {"monday", "tuesday", "wednesday",
                                                 "thursday", "friday"}
    assert calendar.implied("Closed from November to February.") == {
        "november", "december", "january", "february"}  # wraps round the year
    assert calendar.implied("Weekends only.") == {"saturday", "sunday"}
    assert calendar.implied("Open Monday and Friday.") == {"monday", "friday"}
    context = ScanContext(direction="output", documents=(
        "The pool is open 7 am to 9 pm on weekdays and 8 am to 6 pm at weekends.",
        "The outdoor lido opens daily from May to September."))
    assert scanner.scan("On Wednesday the pool opens at 7 am. The lido is open in July.",
                        context).spans == ()
    swapped = scanner.scan("The lido is open in November.", context)
    assert [s.label for s in swapped.spans] == ["unsupported-name"]


def test_minutes_to_and_past_the_hour_in_words() -> None:
    assert numbers.numbers("Be there by twenty to ten.") == numbers.numbers(
        "Registration closes at 09:40.") == {"9.6667"}
    assert numbers.numbers("It opens at five past six.") == {"6.0833"}
    assert numbers.numbers("Doors close at twenty-five to four.") == {"3.5833"}
    # a count, not a time: no word that sets a time before it
    assert numbers.numbers("Groups of five to ten people.") == {"5", "10"}


def test_a_fraction_and_its_percentage_are_the_same_number() -> None:
    assert numbers.converted("Half the total is due in May.",
                             "A further 50% of the total is due in May.") == {"0.5"}
    assert numbers.converted("25% is refunded.", "A quarter is refunded.") == {"25"}
    assert numbers.converted("Half is refunded.", "40% is refunded.") == set()


def test_a_slashed_fraction_is_one_number() -> None:
    assert numbers.numbers("Cellos come in 1/4, 1/2 and 3/4 sizes.") == {"0.25", "0.5",
                                                                          "0.75"}
    # "four years" is not the 4 of "1/4"
    assert "4" not in numbers.numbers("Sizes 1/4 and 3/4.")
    assert numbers.numbers("Open 24/7.") == {"24", "7"}  # not a fraction


def test_a_second_of_something_is_another_not_a_count() -> None:
    assert numbers.another("Choose a second witness who is over 18.") == {"2"}
    assert numbers.another("The second dose follows at 12 weeks.") == frozenset()
    context = ScanContext(direction="output", documents=(
        "A will must be signed in the presence of two witnesses aged 18 or over.",))
    docs = list(context.documents)
    scanner = Grounding()
    assert scanner.judge("Choose a second witness aged 18 or over.", docs)[
        0].off_support_numbers == ()
    assert scanner.judge("The will needs three witnesses aged 18 or over.", docs)[
        0].off_support_numbers == ("3",)


def test_a_conversion_reads_only_numbers_in_the_other_unit() -> None:
    support = "Males dive to 30 metres and most dives last under 10 minutes."
    assert "0.5" not in arithmetic.derived("Dives last half an hour.", support)
    assert "0.5" in arithmetic.derived("Dives last half an hour.",
                                       "Most dives last about 30 minutes.")


def test_arithmetic_with_pence_percentages_and_rates() -> None:
    assert "80" in arithmetic.derived("A tag cuts each crossing from £3.20 to £2.40, a "
                                      "saving of 80p.", "Cars: £3.20; £2.40 with a tag.")
    assert "60" not in arithmetic.derived("It cuts the fare, a saving of 60p.",
                                          "Cars: £3.20; £2.40 with a tag.")
    assert "58.5" in arithmetic.derived("You'd save 10%, bringing each box down to £58.50.",
                                        "Subscribers save 10%.", frozenset({"65"}))
    assert "57.5" not in arithmetic.derived("You'd save 10%, bringing it down to £57.50.",
                                            "Subscribers save 10%.", frozenset({"65"}))
    assert "35" in arithmetic.derived("Pay within 14 days and it's halved to £35.",
                                      "The penalty is £70, reduced by 50% if paid early.")
    assert "130" in arithmetic.derived("Club is £130 more.", "Classic from £210; Club "
                                       "from £340.")
    rate = "Use 3 tablespoons of salt per 1 kg of cabbage."
    assert "6" in arithmetic.derived("2 kg of cabbage needs 6 tablespoons of salt.", rate)
    assert "8" not in arithmetic.derived("2 kg of cabbage needs 8 tablespoons of salt.",
                                         rate)


def test_a_date_a_stated_number_of_days_away_is_worked_out() -> None:
    assert dates.dated("For a ticket issued on 5 March, the window runs until 19 March.",
                       "Pay within 14 days. I got a ticket on 5 March.") == (
        {"19"}, {"march"})
    assert dates.dated("With a 2 September departure, apply by 26 August.",
                       "Apply at least 7 days before travel. I fly on 2 September.") == (
        {"26"}, {"august"})
    assert dates.dated("The window runs until 21 March.", "Pay within 14 days. I got a "
                       "ticket on 5 March.") == (frozenset(), frozenset())
    # two dates of the claim alone do not vouch for each other
    assert dates.dated("Issued on 5 March, it runs until 19 March.",
                       "Pay within 14 days.") == (frozenset(), frozenset())
    context = ScanContext(direction="output", documents=(
        "Apply for the permit at least 7 days before you travel on 2 September.",))
    scanner = Grounding()
    assert scanner.scan("You should apply for the permit by 26 August.", context).spans == ()
    assert scanner.scan("You should apply for the permit by 12 August.",
                        context).spans != ()


def test_words_that_are_not_names() -> None:
    assert checks.names("Because Miso is over 8, a co-payment applies.") == {"Miso"}
    assert checks.names("Because Miso Hall is over 8.") == {"Miso", "Hall"}
    assert checks.missing_names("You need a UK passport.",
                                checks.vocabulary("Visitors from the United Kingdom.")) == []
    assert checks.missing_names("You need a US passport.",
                                checks.vocabulary("Visitors from the United Kingdom.")) == [
        "US"]


def test_a_wish_makes_no_claim() -> None:
    assert not checks.has_claim("I hope Miso responds well to her treatment.")
    assert checks.has_claim("Hope Street station closes at 10 pm.")


def test_an_abbreviation_ends_no_sentence() -> None:
    from bastion.guard.scanners.output._grounding_support import sentence_spans

    text = "Family Box: £65, approx. 5 kg of meat. Couples Box: £42."
    assert [text[a:b] for a, b in sentence_spans(text, 64)] == [
        "Family Box: £65, approx. 5 kg of meat.", "Couples Box: £42."]


def test_not_counting_agrees_with_excluding() -> None:
    context = "The zone is the area between the two lines, excluding the house."
    assert not negation.negation_flip(
        "The zone is the area between the two lines, not counting the house.", context)
    assert negation.negation_flip("The zone does not lie between the two lines.",
                                  "The zone lies between the two lines.")
