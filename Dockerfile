# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin qubicle
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
EXPOSE 10147
# Plain HTTP on the default port. With another --listen port, set QUBICLE_HEALTHCHECK_URL; with a
# --web.config.file that enables TLS or basic auth, override the HEALTHCHECK (it protects every path).
ENV QUBICLE_HEALTHCHECK_URL=http://127.0.0.1:10147/-/healthy
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen(os.environ['QUBICLE_HEALTHCHECK_URL'], timeout=2).status == 200 else 1)"]
ENTRYPOINT ["qubicle-exporter"]
