"""The guard an application calls: one policy, a pipeline for prompts and one for answers.

    from bastion.guard import Guard

    guard = Guard()                                   # the bundled default policy
    verdict = guard.scan_input(user_prompt).verdict   # "allow", "flag", ..., "block"
    answer = guard.scan_output(reply, prompt=user_prompt, canary=token).sanitized
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bastion.errors import InputError
from bastion.guard.base import ScanContext
from bastion.guard.pipeline import PipelineResult
from bastion.guard.policy import Policy, load_policy


class Guard:
    """Scan prompts and answers under one policy.

    Args:
        policy: a :class:`~bastion.guard.policy.Policy`, the path of a policy file, or
            ``None`` for the bundled default policy. Loading builds every scanner once;
            reuse the guard across requests.
    """

    def __init__(self, policy: Policy | str | Path | None = None) -> None:
        self.policy = policy if isinstance(policy, Policy) else load_policy(policy)

    def __repr__(self) -> str:
        return (f"Guard(source={self.policy.source!r}, input={self.policy.input.names}, "
                f"output={self.policy.output.names})")

    def scan_input(self, text: str, context: ScanContext | None = None) -> PipelineResult:
        """Scan a prompt on its way to the model with the policy's input layers.

        Args:
            text: the prompt (str).
            context: what the scanners may know besides the text; its direction must be
                ``"input"`` (the default).
        """
        context = context or ScanContext(direction="input")
        if context.direction != "input":
            raise InputError("scan_input got a context with direction 'output'; use "
                             "scan_output for model answers")
        return self.policy.input.run(text, context)

    def scan_output(self, text: str, *, prompt: str | None = None,
                    documents: Sequence[str] = (), canary: str | None = None,
                    metadata: dict[str, Any] | None = None) -> PipelineResult:
        """Scan a model's answer on its way to the user with the policy's output layers.

        Args:
            text: the answer (str).
            prompt: the prompt that produced it (refusal and leak scanners use it;
                grounding takes the figures and names it states as given).
            documents: trusted context the answer should be grounded in (a list of str).
            canary: the secret token planted in the system prompt; seeing it is a leak.
            metadata: free-form request data for scanners; bastion never logs it.
        """
        if isinstance(documents, str | bytes):
            raise InputError("documents must be a list of strings, got one string; wrap it: "
                             "documents=[text]")
        docs = tuple(documents)
        bad = [type(d).__name__ for d in docs if not isinstance(d, str)]
        if bad:
            raise InputError(f"documents must all be str, got {', '.join(sorted(set(bad)))}")
        if prompt is not None and not isinstance(prompt, str):
            raise InputError(f"prompt must be str, got {type(prompt).__name__}")
        if canary is not None and not (isinstance(canary, str) and canary):
            raise InputError(f"canary must be a non-empty str, got {canary!r}")
        context = ScanContext(direction="output", prompt=prompt, documents=docs,
                              canary=canary, metadata=dict(metadata or {}))
        return self.policy.output.run(text, context)
