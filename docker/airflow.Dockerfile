# Airflow image for Nightshift (scheduler, dag-processor, triggerer, api-server, init).
#
# Built by docker-compose.yaml with the repository root as the build context; the context is
# narrowed to requirements.txt, pyproject.toml, nightshift/, nightshift_model/ and nightshift_stack/ by airflow.Dockerfile.dockerignore.
# The Airflow tag must equal the apache-airflow pin in requirements.txt (tests/test_compose.py checks it).
FROM apache/airflow:3.3.2-python3.11

# spark-submit runs the Spark driver inside the Airflow worker (LocalExecutor: the scheduler
# container), so the image needs a JVM. The base image is Debian bookworm, which has OpenJDK 17.
USER root
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && ln -s "/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)" /usr/lib/jvm/java-17 \
    && apt-get autoremove -yqq --purge \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /opt/nightshift/data /opt/nightshift/src \
    && chown -R airflow:0 /opt/nightshift \
    && chmod -R g+rwX /opt/nightshift \
    && chmod g+s /opt/nightshift/data
ENV JAVA_HOME=/usr/lib/jvm/java-17 \
    PYSPARK_PYTHON=python3

# Everything else as the airflow user, into the image's virtualenv (~/.local).
USER airflow
COPY --chown=airflow:0 requirements.txt /opt/nightshift/src/requirements.txt
# Repeating apache-airflow==${AIRFLOW_VERSION} (set by the base image) makes pip fail instead of
# silently replacing the image's Airflow if requirements.txt ever pins another version. The
# [postgres] extra keeps the Postgres provider and asyncpg, which Airflow 3 needs for a Postgres
# metadata database (the base image has them; requirements.txt does not list them).
RUN pip install --no-cache-dir "apache-airflow[postgres]==${AIRFLOW_VERSION}" -r /opt/nightshift/src/requirements.txt

COPY --chown=airflow:0 pyproject.toml /opt/nightshift/src/pyproject.toml
COPY --chown=airflow:0 nightshift /opt/nightshift/src/nightshift
COPY --chown=airflow:0 nightshift_model /opt/nightshift/src/nightshift_model
COPY --chown=airflow:0 nightshift_stack /opt/nightshift/src/nightshift_stack
RUN pip install --no-cache-dir --no-deps /opt/nightshift/src \
    && java -version \
    && python -c "import nightshift, nightshift_model, nightshift_stack, pyspark; print('nightshift', nightshift.__file__, 'pyspark', pyspark.__version__)"
