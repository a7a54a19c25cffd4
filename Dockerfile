# Tollway as a container: `docker build -t tollway .` (docs/deployment.md). Dependencies from the hashed lock
# (requirements/run.lock), the project from its wheel; runs as an unprivileged user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements/run.lock requirements/run.lock
RUN python -m venv /opt/tollway \
 && /opt/tollway/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements/run.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/tollway/bin/pip wheel --no-cache-dir --no-deps -w /wheels . \
 && /opt/tollway/bin/pip install --no-cache-dir --no-deps /wheels/tollway-*.whl

FROM python:3.11-slim
# The fonts invoice PDFs embed for non-Latin scripts (docs/stripe.md, "Invoice documents"), about 11 MB.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      fonts-dejavu-core fonts-wqy-microhei fonts-symbola \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/tollway --create-home tollway \
 && mkdir -p /var/lib/tollway/journal /etc/tollway \
 && chown -R tollway:tollway /var/lib/tollway
COPY --from=build /opt/tollway /opt/tollway
ENV PATH=/opt/tollway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TOLLWAY_HOST=0.0.0.0 \
    TOLLWAY_PORT=8080 \
    TOLLWAY_JOURNAL_DIR=/var/lib/tollway/journal
USER tollway
WORKDIR /var/lib/tollway
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('TOLLWAY_PORT', '8080')}/healthz\", timeout=2)"]
ENTRYPOINT ["tollway"]
CMD ["serve", "--config", "/etc/tollway/tollway.yaml"]
