# One image for every trafficlight service; docker-compose.yml picks the command per service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TRAFFICLIGHT_HOME=/var/lib/trafficlight

WORKDIR /app
COPY pyproject.toml README.md ./
COPY trafficlight ./trafficlight
COPY router ./router
COPY streams ./streams
COPY migrations ./migrations
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/trafficlight trafficlight \
    && mkdir -p /var/lib/trafficlight \
    && chown trafficlight /var/lib/trafficlight

# Router spool and other local state; a volume in docker-compose.yml.
VOLUME ["/var/lib/trafficlight"]
USER trafficlight
ENTRYPOINT ["trafficlight"]
CMD ["--help"]
