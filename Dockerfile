# syntax=docker/dockerfile:1
# One Dockerfile, one image per service: the service's extra is a build argument.
#   docker build --build-arg EXTRA=ingest     -t llmloop-ingest .
#   docker build --build-arg EXTRA=processor  -t llmloop-processor .
#   docker build --build-arg EXTRA=alerting   -t llmloop-alerting .
#   docker build --build-arg EXTRA=retraining -t llmloop-retraining .
#   docker build --build-arg EXTRA=retraining,trainer --build-arg TORCH_INDEX= -t llmloop-trainer .
# Layers: system + user, then dependencies (cached until pyproject.toml or
# constraints.txt change), then the code (seconds to rebuild).
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

ARG EXTRA=ingest
# CPU wheels for torch by default; an empty TORCH_INDEX takes PyPI's CUDA build (GPU trainer).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin llmloop
WORKDIR /app

# Dependencies only, in a layer of their own: the requirements of the extra, read from
# pyproject.toml (a code change rebuilds only the layer below).
COPY pyproject.toml constraints.txt README.md ./
COPY scripts/extra_deps.py scripts/extra_deps.py
RUN case ",${EXTRA}," in \
      *,processor,*|*,retraining,*|*,trainer,*|*,all,*) \
        pip install ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "torch==2.13.0" ;; \
    esac \
 && python scripts/extra_deps.py "${EXTRA}" > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt

# The code: the shared package, the composition package, the services, the schemas.
COPY shared shared
COPY apps apps
COPY services services
COPY schemas schemas
RUN pip install --no-deps -c constraints.txt . && rm -rf /app/build

USER 10001
ENV LLMLOOP_HOST=0.0.0.0 LLMLOOP_LOG_FORMAT=json LLMLOOP_DATA_DIR=/home/llmloop/data
ENTRYPOINT ["llmloop"]
CMD ["--help"]
