# MLflow tracking server for Nightshift (backend store: Postgres; artifacts: the lake volume).
# The mlflow pin must equal the one in requirements.txt (tests/test_compose.py checks it).
FROM python:3.11-slim-bookworm

RUN pip install --no-cache-dir --root-user-action=ignore "mlflow==3.17.2" "psycopg2-binary==2.9.13"

# Same uid/gid as the other Nightshift containers (50000:0): artifacts land in the shared lake volume.
RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/nightshift --shell /bin/bash nightshift \
    && mkdir -p /opt/nightshift/data/mlflow/artifacts \
    && chown -R 50000:0 /opt/nightshift \
    && chmod -R g+rwX /opt/nightshift \
    && chmod g+s /opt/nightshift/data

USER nightshift
WORKDIR /home/nightshift
EXPOSE 5000
