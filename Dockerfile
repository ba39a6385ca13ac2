# One image per service: pick the extra at build time, e.g.
#   docker build --build-arg EXTRA=ingest -t llmloop-ingest:0.1.0 .
FROM python:3.11-slim
ARG EXTRA=all
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 llmloop
WORKDIR /app
COPY . .
RUN pip install -c constraints.txt ".[${EXTRA}]"
USER llmloop
ENV LLMLOOP_HOST=0.0.0.0 LLMLOOP_LOG_FORMAT=json LLMLOOP_DATA_DIR=/home/llmloop/data
ENTRYPOINT ["llmloop"]
