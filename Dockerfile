FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml setup.py README.md ./
COPY bot ./bot
COPY locales ./locales
RUN pip install .
# Run as an unprivileged user; ./data holds the SQLite file when no DATABASE_URL is given.
RUN useradd --create-home paincoach && mkdir -p /app/data && chown paincoach /app/data
USER paincoach
CMD ["python", "-m", "bot", "run"]
