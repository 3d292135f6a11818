# syntax=docker/dockerfile:1
# Build: docker build -t bcc-image-exporter .
# Run:   docker run -p 10041:10041 -v "$PWD/config.yml:/etc/bcc-image-exporter/config.yml:ro" bcc-image-exporter

FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter

# Build the wheel first, then install only it and its dependencies into a self-contained venv.
RUN python -m venv /opt/venv \
    && python -m pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install /wheels/*.whl


FROM python:3.11-slim

ARG UID=10001
ARG GID=10001

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN groupadd --system --gid "${GID}" exporter \
    && useradd --system --uid "${UID}" --gid "${GID}" --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin exporter \
    && mkdir -p /etc/bcc-image-exporter

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
EXPOSE 10041

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:10041/healthz', timeout=4).status != 200)"]

ENTRYPOINT ["bcc-image-exporter"]
CMD ["--config.file=/etc/bcc-image-exporter/config.yml", "--web.listen-address=:10041"]
