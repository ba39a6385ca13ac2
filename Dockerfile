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

# Dependencies only: an empty package skeleton lets pip resolve the extra.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p shared/llmloop/bus shared/llmloop/store shared/llmloop/testing \
        services/ingest/llmloop_ingest services/processor/llmloop_processor \
        services/alerting/llmloop_alerting services/retraining/llmloop_retraining/jobs \
        services/console/llmloop_console schemas \
 && case ",${EXTRA}," in \
      *,processor,*|*,retraining,*|*,trainer,*|*,all,*) \
        pip install ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "torch==2.13.0" ;; \
    esac \
 && pip install -c constraints.txt ".[${EXTRA}]" \
 && pip uninstall -y llmloop

# The code.
COPY shared shared
COPY services services
COPY schemas schemas
RUN pip install --no-deps -c constraints.txt . && rm -rf /app/build

USER 10001
ENV LLMLOOP_HOST=0.0.0.0 LLMLOOP_LOG_FORMAT=json LLMLOOP_DATA_DIR=/home/llmloop/data
ENTRYPOINT ["llmloop"]
CMD ["--help"]
