# The same pinned set as `make run`, serving on all interfaces.
# Pages then ask for the API key (they are open without one only on loopback).
FROM python:3.11-slim
WORKDIR /app
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SAMEPAGE_HOME=/data \
    SAMEPAGE_HOST=0.0.0.0 \
    SAMEPAGE_PORT=8000
COPY pyproject.toml constraints.txt README.md ./
COPY features ./features
COPY training ./training
COPY serving ./serving
COPY samepage ./samepage
COPY configs ./configs
RUN pip install --no-cache-dir -c constraints.txt . \
 && useradd --system --uid 10001 --home-dir /data samepage \
 && mkdir -p /data && chown samepage /data && chmod 0700 /data
# The service needs no privileges: it runs as its own user, owning only the workspace volume.
USER samepage
VOLUME ["/data"]
EXPOSE 8000
CMD ["samepage", "up", "--host", "0.0.0.0"]
