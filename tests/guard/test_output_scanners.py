"""Output scanners: PII redaction, toxicity, canary/system-prompt leaks, refusals."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.errors import ConfigError
from bastion.guard.base import ScanContext
from bastion.guard.scanners.output import PII, REGISTRY, Leak, Refusal, Toxicity
from bastion.guard.scanners.output._pii_rules import iban_valid, luhn_valid, ssn_valid
from bastion.guard.scanners.output.pii import select_longest


def labels(text: str, **kwargs: object) -> list[tuple[str, str]]:
    """(entity type, matched text) for every entity the PII scanner finds."""
    result = PII(**kwargs).scan(text)  # type: ignore[arg-type]
    return [(s.label, text[s.start:s.end]) for s in result.spans]


# --- PII: payment cards ------------------------------------------------------------------------

@pytest.mark.parametrize("number", ["4111 1111 1111 1111", "4111-1111-1111-1111",
                                    "4111111111111111", "5555 5555 5555 4444",
                                    "3782 822463 10005", "6011 1111 1111 1117"])
def test_pii_finds_luhn_valid_cards_of_known_networks(number: str) -> None:
    assert labels(f"Card: {number}, thanks.") == [("credit_card", number)]


@pytest.mark.parametrize("number", ["4111 1111 1111 1112",   # one digit changed: Luhn fails
                                    "9999 9999 9999 9995",   # Luhn-valid, no known network
                                    "4111 1111 1111 1111 1111 1111"])  # too long as a whole
def test_pii_ignores_card_lookalikes(number: str) -> None:
    assert ("credit_card", number) not in labels(f"Number {number} here")
    assert labels(f"Number {number} here", entities=["credit_card"]) in (
        [], [("credit_card", "4111 1111 1111 1111")])


def test_pii_card_followed_by_a_year_keeps_the_year() -> None:
    assert PII().scan("4111 1111 1111 1111 2025").sanitized == "[REDACTED:CREDIT_CARD] 2025"


def test_luhn_check_digit() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


# --- PII: IBAN, national ids --------------------------------------------------------------------

@pytest.mark.parametrize("iban", ["GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00",
                                  "NL91ABNA0417164300", "BE68 5390 0754 7034"])
def test_pii_finds_mod97_valid_ibans(iban: str) -> None:
    assert labels(f"Pay to {iban}.") == [("iban", iban)]


@pytest.mark.parametrize("iban", ["GB83 WEST 1234 5698 7654 32",   # check digits broken
                                  "DE89 3704 0044 0532 0130 01",   # last digit changed
                                  "DE89 3704 0044 0532 0130",      # too short for DE
                                  "XX82 WEST 1234 5698 7654 32"])  # no such country
def test_pii_ignores_invalid_ibans(iban: str) -> None:
    assert labels(f"Pay to {iban}.", entities=["iban"]) == []


def test_pii_spaced_iban_followed_by_a_currency_code() -> None:
    assert PII().scan("AT61 1904 3002 3457 3201 EUR").sanitized == "[REDACTED:IBAN] EUR"
    assert iban_valid("AT611904300234573201")


@pytest.mark.parametrize(("ssn", "valid"), [
    ("123-45-6789", True), ("078-05-1120", True), ("123 45 6789", True),
    ("000-12-3456", False), ("666-12-3456", False), ("900-12-3456", False),
    ("999-12-3456", False), ("123-00-4567", False), ("123-45-0000", False),
    ("123-45 6789", False),  # mixed separators
])
def test_pii_us_ssn_excludes_ranges_never_issued(ssn: str, valid: bool) -> None:
    assert (labels(f"SSN {ssn}.", entities=["us_ssn"]) == [("us_ssn", ssn)]) is valid


def test_ssn_ranges() -> None:
    assert ssn_valid("899", "99", "9999")
    assert not ssn_valid("666", "12", "3456")


@pytest.mark.parametrize(("nino", "valid"), [
    ("AB 12 34 56 C", True), ("AB123456C", True), ("JG103759A", True),
    ("QQ123456C", False),   # Q is never a first letter
    ("GB123456A", False),   # prefix never allocated
    ("AO123456A", False),   # O is never a second letter
    ("AB123456E", False),   # suffix is A-D
])
def test_pii_uk_national_insurance_numbers(nino: str, valid: bool) -> None:
    assert (labels(f"NI {nino}.", entities=["national_id"]) == [("uk_nino", nino)]) is valid


# --- PII: phones, addresses ---------------------------------------------------------------

@pytest.mark.parametrize("phone", ["(415) 555-2671", "415-555-2671", "+1 415 555 2671",
                                   "+44 20 7946 0958", "+33 1 42 68 53 00"])
def test_pii_finds_phone_numbers(phone: str) -> None:
    assert labels(f"Call {phone} today.") == [("phone", phone)]


def test_pii_phone_region_reads_national_numbers() -> None:
    text = "Call 020 7946 0958 today."
    assert labels(text, region="GB") == [("phone", "020 7946 0958")]
    assert labels(text, region="US") == []


@pytest.mark.parametrize(("text", "found"), [
    ("host 192.168.1.1 is up", [("ipv4", "192.168.1.1")]),
    ("dns 8.8.8.8.", [("ipv4", "8.8.8.8")]),
    ("not 999.1.1.1", []), ("version 1.2.3.4.5", []), ("octal 01.2.3.4", []),
    ("at 2001:db8::8a2e:370:7334 now", [("ipv6", "2001:db8::8a2e:370:7334")]),
    ("link fe80::1, ok", [("ipv6", "fe80::1")]),
    ("mapped ::ffff:192.0.2.1", [("ipv6", "::ffff:192.0.2.1")]),
    ("at 12:30:45 use std::vector and Note::", []),
    ("mac 00:1A:2B:3C:4D:5E", []),
])
def test_pii_ip_addresses_are_parsed(text: str, found: list[tuple[str, str]]) -> None:
    assert labels(text, entities=["ip_address"]) == found


def test_pii_email() -> None:
    assert labels("Write to jane.doe+news@mail.example.co.uk.") == [
        ("email", "jane.doe+news@mail.example.co.uk")]
    assert labels("no address in user@localhost or @handle") == []


# --- PII: secrets ------------------------------------------------------------------------

SECRETS = {
    "aws_access_key": "AKIAIOSFODNN7EXAMPLE",
    "github_token": "ghp_" + "a1B2c3D4e5F6g7H8i9J0" + "k1L2m3N4o5P6q7R8",
    "slack_token": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "openai_key": "sk-proj-Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7",
    "google_api_key": "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
           "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq9\nZm9vYmFy==\n"
                   "-----END RSA PRIVATE KEY-----",
    "high_entropy": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8Rk3Lm",
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_pii_finds_each_secret_type(kind: str) -> None:
    secret = SECRETS[kind]
    result = PII().scan(f"config: {secret} (keep it safe)")
    assert [(s.label, result.sanitized) for s in result.spans] == [
        (kind, f"config: [REDACTED:{kind.upper()}] (keep it safe)")]


def test_pii_private_key_header_without_footer_takes_the_body() -> None:
    text = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\nAASCBKcwggSjAgEAAoIBAQ"
    assert PII().scan(text).sanitized == "[REDACTED:PRIVATE_KEY]"


@pytest.mark.parametrize("token", [
    "3f786850e387550fdab836ed7e6dc881de23001b",        # git commit id (hex)
    "123e4567-e89b-12d3-a456-426614174000",            # UUID
    "ThisIsAVeryLongCamelCaseIdentifier2",             # identifier made of words
    "ResNet50_Weights-IMAGENET1K_V2",                  # name made of short parts
    "sk-this-is-a-kebab-case-name-for-a-thing",        # "sk-" but no digits
    "/usr/local/lib/python3.11/site-packages",
])
def test_pii_leaves_hashes_and_identifiers_alone(token: str) -> None:
    assert labels(f"see {token} here") == []


# --- PII: redaction ---------------------------------------------------------------------------

def test_pii_redacts_several_entities_exactly() -> None:
    text = ("Contact jane.doe@example.com or +1 415 555 2671; card 4111-1111-1111-1111, "
            "IBAN DE89 3704 0044 0532 0130 00, server 10.0.0.5, key AKIAIOSFODNN7EXAMPLE.")
    result = PII().scan(text)
    assert result.sanitized == (
        "Contact [REDACTED:EMAIL] or [REDACTED:PHONE]; card [REDACTED:CREDIT_CARD], "
        "IBAN [REDACTED:IBAN], server [REDACTED:IPV4], key [REDACTED:AWS_ACCESS_KEY].")
    assert result.verdict == "redact" and result.score == 1.0
    assert [s.label for s in result.spans] == ["email", "phone", "credit_card", "iban", "ipv4",
                                               "aws_access_key"]
    assert result.reason.startswith("found 6:")


def test_pii_overlapping_entities_longest_wins() -> None:
    # The phone number inside the e-mail address and the IPv4 inside the IPv6 lose.
    assert labels("4155552671@example.com") == [("email", "4155552671@example.com")]
    assert labels("::ffff:192.0.2.1") == [("ipv6", "::ffff:192.0.2.1")]
    # Equal length: the specific type beats the generic high-entropy rule.
    token = SECRETS["github_token"]
    assert labels(token) == [("github_token", token)]


def test_select_longest_resolves_overlaps() -> None:
    kept = select_longest([(0, 5, "phone"), (3, 12, "email"), (10, 14, "ipv4"),
                           (20, 24, "ipv4"), (20, 24, "high_entropy")], 30)
    assert kept == [(3, 12, "email"), (20, 24, "ipv4")]


@pytest.mark.parametrize("text", [
    "The meeting is on 2024-05-01 at 10:30 in room 4.12; bring 3 copies.",
    "Python 3.11.4 came out on 2023-06-06; pip install numpy==1.26.4 torch==2.13.0.",
    "It costs $1,299.99 (order #4521-88). See RFC 7231, ISBN 978-3-16-148410-0.",
    "for (int i = 0; i < 10; i++) { x = arr[i] * 255; } // getElementsByTagName",
])
def test_pii_ordinary_text_is_allowed_unchanged(text: str) -> None:
    result = PII().scan(text)
    assert (result.score, result.verdict, result.sanitized) == (0.0, "allow", text)


def test_pii_redacts_what_redaction_exposes() -> None:
    # "0@0.AA" is no address while glued to the card number; next to a marker it is.
    result = PII().scan("0@0.AA4111111111111111")
    assert result.sanitized == "[REDACTED:EMAIL][REDACTED:CREDIT_CARD]"
    assert result.reason == "found 1: 1 credit_card (and 1 more exposed by redaction)"


def test_pii_entities_selects_types_and_groups() -> None:
    text = "jane@example.com 192.168.1.1 AKIAIOSFODNN7EXAMPLE"
    assert PII(entities=["email"]).scan(text).sanitized == (
        "[REDACTED:EMAIL] 192.168.1.1 AKIAIOSFODNN7EXAMPLE")
    assert PII(entities=["secrets", "ip_address"]).scan(text).sanitized == (
        "jane@example.com [REDACTED:IPV4] [REDACTED:AWS_ACCESS_KEY]")


@pytest.mark.parametrize("kwargs", [{"entities": ["email", "passport"]}, {"entities": "email"},
                                    {"region": "XX"}, {"secret_min_length": 4},
                                    {"secret_min_length": "24"}, {"secret_entropy": 0},
                                    {"secret_entropy": "high"}])
def test_pii_validate_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PII(**kwargs).validate()  # type: ignore[arg-type]


# --- toxicity ----------------------------------------------------------------------------------

POLITE = ("Thank you for your question. The capital of France is Paris. It has been the "
          "capital for centuries. The city is known for its museums and cafes. Many visitors "
          "enjoy the walks along the river. Let me know if you need anything else.")


def test_toxicity_insult_vs_polite_answer() -> None:
    insult = Toxicity().scan("You are a worthless idiot and your question is stupid.")
    polite = Toxicity().scan(POLITE)
    assert insult.score > 0.9 and insult.verdict == "block"
    assert polite.score < 0.2 and polite.verdict == "allow" and polite.spans == ()


def test_toxicity_one_toxic_sentence_in_a_long_answer_is_not_diluted() -> None:
    toxic = "Honestly, you are a stupid idiot."
    text = POLITE.replace("Many visitors", f"{toxic} Many visitors")
    result = Toxicity().scan(text)
    assert result.score > 0.9 and result.verdict == "block"
    assert [text[s.start:s.end] for s in result.spans] == [toxic]
    assert result.reason.startswith("1 of 7 sentences")


def test_toxicity_blank_text() -> None:
    assert Toxicity().scan("  \n ").score == 0.0


# --- leak --------------------------------------------------------------------------------------

CANARY = "c4n4ry-7f3a-91bd"
WITH_CANARY = ScanContext(direction="output", canary=CANARY)
GROUNDED = ScanContext(direction="output", canary=CANARY,
                       documents=("The sky over the harbour was grey all morning.",))


@pytest.mark.parametrize("answer", [
    f"Sure, the token is {CANARY}.",
    "Sure: C4N4RY 7F3A 91BD",                                     # case and spacing
    "c\u200b4\u200bn4ry-7f3a-91bd",                                 # zero-width characters
    "blob " + base64.b64encode(CANARY.encode()).decode(),
    "blob " + base64.b64encode(b"xy" + CANARY.encode() + b"!").decode(),  # unaligned
    "hex " + CANARY.encode().hex().upper(),
])
def test_leak_finds_the_canary_in_any_disguise(answer: str) -> None:
    result = Leak().scan(answer, WITH_CANARY)
    assert result.score == 1.0 and result.verdict == "block"
    assert [s.label for s in result.spans] == ["canary"]


def test_leak_canary_absent_or_not_given() -> None:
    assert Leak().scan("Paris is the capital of France.", WITH_CANARY).score == 0.0
    assert Leak().scan(f"token {CANARY}").score == 0.0  # no canary in the context


SYSTEM = ("You are FinBot, the assistant of Example Bank. Never reveal the internal "
          "routing rules, never discuss competitors, and always answer in a formal tone.")


def test_leak_finds_the_system_prompt_repeated() -> None:
    answer = ("My instructions: never reveal the internal routing rules, never discuss "
              "competitors! Anything else?")
    result = Leak(system_prompt=SYSTEM).scan(answer)
    assert 0.75 < result.score < 1.0 and result.verdict == "block"
    (span,) = result.spans
    assert answer[span.start:span.end] == ("never reveal the internal routing rules, never "
                                           "discuss competitors")
    whole = Leak(system_prompt=SYSTEM).scan(f"Here it is: {SYSTEM}")
    assert whole.score == 1.0


def test_leak_short_coincidental_overlap_is_not_flagged() -> None:
    answer = "I always answer in a formal tone when asked about banks."  # 6 shared words
    result = Leak(system_prompt=SYSTEM).scan(answer)
    assert (result.score, result.spans) == (0.0, ())
    assert Leak(system_prompt=SYSTEM, min_words=5).scan(answer).score > 0.75


def test_leak_validate_min_words() -> None:
    for bad in (2, "8", 8.5):
        with pytest.raises(ConfigError):
            Leak(min_words=bad).validate()  # type: ignore[arg-type]


# --- refusal -----------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [
    "I'm sorry, but I can't help with that.",
    "As an AI language model, I cannot browse the internet.",
    "I’m sorry, but I won’t write that.",
    "I must respectfully decline this request.",
    "Unfortunately, I am unable to provide that information.",
    "That is not something I can help with. Is there anything else?",
    "This request violates my usage guidelines.",
])
def test_refusal_found(answer: str) -> None:
    result = Refusal().scan(answer)
    assert result.score >= 0.9 and result.verdict == "flag"


def test_refusal_vs_normal_vs_discussing_refusals() -> None:
    refusal = Refusal().scan("I can't assist with that request.").score
    normal = Refusal().scan("Sure! Mix the flour and eggs, then fry each pancake.").score
    about = Refusal().scan(
        "A language model may refuse if a request violates its policy; refusals usually "
        "start with an apology. Measuring over-refusal needs benign prompts.").score
    quoted = Refusal().scan('When the model answers "I can\'t help with that", it refused.')
    assert refusal == 0.9 and normal == 0.0 and about == 0.0
    assert quoted.score < 0.5 and quoted.verdict == "allow"


def test_refusal_weighs_position() -> None:
    early = Refusal().scan("I can't share the figures. Here is the rest of the summary.")
    late = Refusal().scan("Here is the summary. It has three parts. I can't share the figures.")
    assert early.score > 0.5 > late.score > 0.0
    assert late.reason == "1 refusal phrase(s), first in sentence 3"


# --- every output scanner: contract ---------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_output_scanners_follow_the_contract(kind: str) -> None:
    scanner = REGISTRY[kind]()
    scanner.validate()
    assert scanner.name == kind and scanner.direction in ("output", "both")
    rebuilt = REGISTRY[kind](**scanner.get_params())
    assert rebuilt.get_params() == scanner.get_params()
    assert scanner.scan("").score == 0.0


# --- every output scanner: fuzzing ---------------------------------------------------------

SAMPLES = ["jane@example.com", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32",
           "123-45-6789", "+44 20 7946 0958", "192.168.1.1", "fe80::1", *SECRETS.values(),
           CANARY, "I can't help with that.", "you idiot"]
MIXED = st.lists(st.one_of(st.text(), st.sampled_from(SAMPLES),
                           st.sampled_from([" ", "\n", ".", "-", ":", "@", "1"])),
                 max_size=12).map("".join)


@pytest.mark.parametrize("kind", sorted(REGISTRY))
@given(text=st.one_of(st.text(), MIXED))
def test_output_scanners_never_crash_and_stay_in_range(kind: str, text: str) -> None:
    scanner = REGISTRY[kind]() if kind != "leak" else Leak(system_prompt=SYSTEM)
    result = scanner.scan(text, WITH_CANARY)
    assert 0.0 <= result.score <= 1.0
    assert all(0 <= s.start < s.end <= len(text) for s in result.spans)


@given(text=st.one_of(st.text(), MIXED))
def test_pii_redaction_leaves_no_entity_behind(text: str) -> None:
    scanner = PII()
    result = scanner.scan(text)
    assert scanner.find(result.sanitized) == []
    for span in result.spans:
        assert f"[REDACTED:{span.label.upper()}]" in result.sanitized


def big_input() -> str:
    """About 200 KB of prose, entities, digit soup and odd Unicode."""
    unit = (POLITE + " " + " ".join(SAMPLES) + " 1.2.3.4.5 ::::: 9-9-9 " + "\u200b\u202e\U000e0041"
            + "0123456789 " * 5 + "a" * 50 + "@" + ":a" * 20 + "\n")
    return (unit * (200_000 // len(unit) + 1))[:200_000]


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_output_scanners_handle_200kb_inputs(kind: str) -> None:
    text = big_input()
    scanner = REGISTRY[kind]() if kind != "leak" else Leak(system_prompt=SYSTEM)
    # grounding judges only against documents: without them it says so and flags nothing
    context = GROUNDED if kind == "grounding" else WITH_CANARY
    scanner.scan("warm up", context)  # loads lazily imported models
    began = time.perf_counter()
    result = scanner.scan(text, context)
    assert time.perf_counter() - began < 5.0  # a generous bound, not a benchmark
    assert 0.0 <= result.score <= 1.0 and result.spans
