"""Policy files (every error message, the bundled default) and the Guard that applies them."""

from __future__ import annotations

import textwrap
from importlib import resources

import pytest
import yaml

from bastion.errors import ConfigError, InputError
from bastion.guard import Finding, Guard, Policy, ScanContext, Scanner, load_policy, scanners
from bastion.guard.policy import policy_from_dict

DEFAULT_INPUT = ["sanitizer", "decoder", "rules", "ensemble"]
DEFAULT_OUTPUT = ["leak", "pii", "toxicity", "refusal"]


class Word(Scanner):
    """Scores 1.0 when ``word`` occurs in the text; remembers the contexts it saw."""

    kind = "word"

    def __init__(self, *, name: str | None = None, threshold: float = 0.5,
                 action: str = "block", word: str = "attack") -> None:
        self._init_common(name, threshold, action)
        if not word:
            raise ValueError("word must not be empty")
        self.word = word
        self.contexts: list[ScanContext] = []

    def _scan(self, text: str, context: ScanContext) -> Finding:
        self.contexts.append(context)
        return Finding(score=float(self.word in text), reason=f"looked for {self.word!r}")


class InputOnly(Word):
    kind = "input-only"
    direction = "input"


class OutputOnly(Word):
    kind = "output-only"
    direction = "output"


@pytest.fixture
def registry(monkeypatch):
    """The test scanners, registered next to whatever real scanners exist."""
    for cls in (Word, InputOnly, OutputOnly):
        monkeypatch.setitem(scanners.REGISTRY, cls.kind, cls)
    return scanners.REGISTRY


def write(tmp_path, text: str):
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_policy_file_builds_both_pipelines_in_order(registry, tmp_path):
    path = write(tmp_path, """
        fail_mode: open
        early_exit: false
        budget_ms: 250
        input:
          - kind: input-only
          - kind: word
            name: second
            word: ignore
            threshold: 0.7
            action: review
            budget_ms: 5
        output:
          - kind: output-only
    """)
    policy = load_policy(path)
    assert policy.source == str(path)
    assert policy.input.names == ["input-only", "second"]
    assert policy.output.names == ["output-only"]
    second = policy.input.layers[1]
    assert second.budget_ms == 5
    assert second.scanner.get_params() == {"name": "second", "threshold": 0.7,
                                           "action": "review", "word": "ignore"}
    for pipe in (policy.input, policy.output):
        assert (pipe.fail_mode, pipe.early_exit, pipe.budget_ms) == ("open", False, 250)


def test_missing_sections_and_settings_take_the_defaults(registry, tmp_path):
    policy = load_policy(write(tmp_path, "input:\n  - kind: word\n"))
    assert policy.output.names == []
    assert (policy.input.fail_mode, policy.input.early_exit, policy.input.budget_ms) == (
        "closed", True, None)
    assert load_policy(write(tmp_path, "")).input.names == []


@pytest.mark.parametrize("text,pattern", [
    ("input:\n  - kind: nope\n",
     r"input layer 1: unknown scanner kind 'nope'; known kinds: .*word"),
    ("input:\n  - kind: word\n    thresh: 0.5\n",
     r"unknown parameter\(s\) thresh for kind 'word'; accepted: kind, budget_ms, action, name, "
     r"threshold, word"),
    ("input:\n  - kind: word\n  - kind: word\n    threshold: 1.5\n",
     r"input layer 2: word: threshold must be in \[0, 1\], got 1.5"),
    ("input:\n  - kind: word\n    threshold: high\n", r"threshold must be a number"),
    ("output:\n  - kind: word\n    action: drop\n", r"output layer 1: .*action must be one of"),
    ("input:\n  - kind: word\n    action: [block]\n", r"action must be one of"),
    ("input:\n  - kind: word\n    name: 7\n", r"name must be a non-empty string"),
    ("input:\n  - kind: word\n    word: ''\n", r"kind 'word' refused its parameters: word must"),
    ("input:\n  - kind: word\n    budget_ms: fast\n", r"input layer 1: .*budget_ms must be a"),
    ("input:\n  - kind: word\n  - kind: word\n", r"input: layers 1 and 2 are both named 'word'"),
    ("input:\n  - kind: output-only\n", r"kind 'output-only' scans outputs; move it under output"),
    ("output:\n  - kind: input-only\n", r"scans inputs; move it under input"),
    ("input: word\n", r"input must be a list of layers"),
    ("input:\n  - word\n", r"input layer 1: a layer is a mapping with a 'kind'"),
    ("input:\n  - threshold: 0.5\n", r"a layer is a mapping with a 'kind'"),
    ("input:\n  - kind: 3\n", r"a layer is a mapping with a 'kind'"),
    ("- kind: word\n", r"a policy is a mapping .* got list"),
    ("inputs: []\n", r"unknown top-level key\(s\) inputs; accepted: fail_mode"),
    ("fail_mode: ajar\n", r"fail_mode must be one of closed, open, got 'ajar'"),
    ("early_exit: 1\n", r"early_exit must be true or false"),
    ("budget_ms: -3\ninput: []\n", r"input: pipeline: budget_ms must be a positive"),
])
def test_every_mistake_gets_a_message_naming_the_file_and_the_fix(registry, tmp_path, text,
                                                                   pattern):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=pattern) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: ")


def test_yaml_syntax_errors_give_the_line(registry, tmp_path):
    path = write(tmp_path, "fail_mode: closed\ninput:\n  - kind: word\n    name: [oops\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+, column \d+") as info:
        load_policy(path)
    line = int(str(info.value).split("at line ")[1].split(",")[0])
    assert line in (4, 5)  # the unclosed bracket, or the end of input where it is noticed
    path = write(tmp_path, "input:\n  - kind: word\n   bad: indent\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line 3"):
        load_policy(path)


def test_only_safe_yaml_is_read(registry, tmp_path):
    path = write(tmp_path, "input: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_policy(path)


def test_an_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the policy file"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"input: [caf\xe9]\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(bad)


def test_unknown_kinds_say_when_nothing_is_registered(monkeypatch):
    monkeypatch.setattr(scanners, "REGISTRY", {})
    with pytest.raises(ConfigError, match="no scanner is registered"):
        policy_from_dict({"input": [{"kind": "rules"}]})


def test_the_default_policy_names_the_planned_kinds():
    text = resources.files("bastion.guard").joinpath("default_policy.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    assert [layer["kind"] for layer in data["input"]] == DEFAULT_INPUT
    assert [layer["kind"] for layer in data["output"]] == DEFAULT_OUTPUT
    assert data["fail_mode"] == "closed" and data["early_exit"] is True


def test_the_default_policy_builds_with_whatever_scanners_are_registered(monkeypatch):
    for kind in DEFAULT_INPUT + DEFAULT_OUTPUT:
        monkeypatch.setitem(scanners.REGISTRY, kind, type(kind, (Word,), {"kind": kind}))
    policy = load_policy()
    assert policy.source == "<default>"
    assert policy.input.names == DEFAULT_INPUT
    assert policy.output.names == DEFAULT_OUTPUT


def test_the_default_policy_loads_with_the_real_scanners():
    """Fails (loudly, by design) until every kind of the default policy is registered."""
    policy = load_policy()
    assert policy.input.names == DEFAULT_INPUT
    assert policy.output.names == DEFAULT_OUTPUT
    guard = Guard()
    assert guard.scan_input("What is the capital of France?").verdict == "allow"
    assert guard.scan_output("Paris is the capital of France.").verdict == "allow"


@pytest.fixture
def guard(registry):
    return Guard(policy_from_dict({"input": [{"kind": "word", "name": "in"}],
                                   "output": [{"kind": "word", "name": "out", "word": "secret"}]}))


def test_the_guard_scans_inputs_and_outputs_with_their_own_layers(guard):
    assert guard.scan_input("an attack").verdict == "block"
    assert guard.scan_input("a secret").verdict == "allow"
    assert guard.scan_output("a secret").verdict == "block"
    assert [r.scanner for r in guard.scan_output("x").layers] == ["out"]


def test_scan_output_hands_the_answer_context_to_the_scanners(guard):
    guard.scan_output("answer", prompt="question", documents=["doc a", "doc b"], canary="c4n")
    out, inp = guard.policy.output.layers[0].scanner, guard.policy.input.layers[0].scanner
    assert isinstance(out, Word) and isinstance(inp, Word)
    assert out.contexts[-1] == ScanContext(direction="output", prompt="question",
                                           documents=("doc a", "doc b"), canary="c4n")
    guard.scan_input("prompt")
    assert inp.contexts[-1].direction == "input"


@pytest.mark.parametrize("kwargs,match", [({"documents": "one doc"}, "wrap it"),
                                          ({"documents": [b"bytes"]}, "bytes"),
                                          ({"prompt": 3}, "prompt must be str"),
                                          ({"canary": ""}, "canary")])
def test_scan_output_refuses_malformed_context(guard, kwargs, match):
    with pytest.raises(InputError, match=match):
        guard.scan_output("answer", **kwargs)


def test_scan_input_refuses_an_output_context(guard):
    with pytest.raises(InputError, match="scan_output"):
        guard.scan_input("x", ScanContext(direction="output"))


def test_a_guard_takes_a_policy_object_or_a_path(registry, tmp_path):
    path = write(tmp_path, "input:\n  - kind: word\n")
    assert Guard(path).policy.input.names == ["word"]
    policy = load_policy(path)
    assert Guard(policy).policy is policy
    assert isinstance(policy, Policy)
