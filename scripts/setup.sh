#!/usr/bin/env bash
# Create .venv if it is missing and install ambiemo with its pinned dependencies.
# Usage: scripts/setup.sh [test]   ("test" adds pytest, nbval, hypothesis, selenium, and the
#                                   Chromium browser + driver the HTML-report test opens)
# Idempotent: reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-}
py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($py --version)"
    "$py" -m venv .venv
fi
target="."
[ "$extras" = "test" ] && target=".[test]"
stamp=".venv/.ambiemo-installed${extras:+-$extras}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing ambiemo${extras:+[$extras]} and its pinned dependencies into .venv (about 2 GB; a few quiet minutes on first use; README: CPU-only torch)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e "$target"
    echo "$want" > "$stamp"
fi
# CPU-only extras for the tiny-checkpoint tests. Several processors (Qwen2.5-Omni's and
# Qwen3-Omni's video processor, Phi-4's image processor, Gemma-3n's timm vision tower) need
# torchvision, and Granite-Speech's feature extractor needs torchaudio. No CPU build of either
# matches torch 2.13 in the registries: the PyPI wheels link CUDA torch libraries, so their
# compiled ops cannot load beside the CPU torch. Their Python code (the transforms the
# processors call) works unchanged, so the wheels go, without dependencies and with their
# compiled libraries removed, into .venv/cpu-extras, which only tests/cpu_extras.py puts on
# sys.path; the library and the notebooks never see them. A GPU install uses the real builds.
cpu_extras=(torchvision==0.28.0 torchaudio==2.11.0 timm==1.0.31)
extras_stamp=".venv/cpu-extras/.installed"
if [ "$extras" = "test" ] && [ "$(cat "$extras_stamp" 2>/dev/null)" != "${cpu_extras[*]}" ]; then
    echo "setup: installing ${cpu_extras[*]} (Python parts only) into .venv/cpu-extras"
    rm -rf .venv/cpu-extras
    .venv/bin/python -m pip install --quiet --no-deps --target .venv/cpu-extras "${cpu_extras[@]}"
    find .venv/cpu-extras -name '*.so' -delete
    rm -rf .venv/cpu-extras/torchvision.libs .venv/cpu-extras/bin
    echo "${cpu_extras[*]}" > "$extras_stamp"
fi
# tests/test_report.py opens the HTML report in headless Chromium through selenium; the
# browser and its matching driver come from the distribution's packages (Debian: chromium,
# chromium-driver), never downloaded by selenium at test time.
have_browser() {
    { command -v chromium || command -v chromium-browser; } >/dev/null && command -v chromedriver >/dev/null
}
if [ "$extras" = "test" ] && ! have_browser; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing chromium and chromium-driver (Debian packages) for the report test"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            chromium chromium-driver >/dev/null
    else
        echo "setup: the report test needs Chromium and chromedriver; install them, e.g." >&2
        echo "         sudo apt-get install chromium chromium-driver      (Debian/Ubuntu)" >&2
        echo "       and make sure 'chromium' and 'chromedriver' are on PATH" >&2
        exit 1
    fi
fi
# tests/test_tables.py compiles every LaTeX table with pdflatex; booktabs comes with Debian's
# texlive-latex-recommended, the rest of what the tables use with texlive-latex-base.
if [ "$extras" = "test" ] && ! { command -v pdflatex >/dev/null && kpsewhich booktabs.sty >/dev/null; }; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing texlive-latex-base and texlive-latex-recommended for the LaTeX table test"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
            --no-install-recommends texlive-latex-base texlive-latex-recommended >/dev/null
    else
        echo "setup: the LaTeX table test needs pdflatex and booktabs; install them, e.g." >&2
        echo "         sudo apt-get install texlive-latex-base texlive-latex-recommended" >&2
        exit 1
    fi
fi
