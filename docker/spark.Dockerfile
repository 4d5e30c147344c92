# Spark master/worker image for Nightshift.
#
# Not apache/spark: the executors must run the same Python minor version (3.11) as the driver,
# which runs in the Airflow image, and must have the same pyspark (4.2.0) and the nightshift
# package. So: Python 3.11 + OpenJDK 17 + requirements.txt + the project, like the Airflow image.
# bookworm, not the default trixie: trixie has no OpenJDK 17.
FROM python:3.11-slim-bookworm

RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && ln -s "/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)" /usr/lib/jvm/java-17 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

# Same uid/gid as the airflow user in the Airflow image (50000:0), so every container can read
# and write the shared lake volume.
RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/nightshift --shell /bin/bash nightshift \
    && mkdir -p /opt/nightshift/data /opt/nightshift/src /opt/spark/work \
    && chown -R 50000:0 /opt/nightshift /opt/spark \
    && chmod -R g+rwX /opt/nightshift /opt/spark \
    && chmod g+s /opt/nightshift/data

COPY requirements.txt /opt/nightshift/src/requirements.txt
RUN pip install --no-cache-dir --root-user-action=ignore -r /opt/nightshift/src/requirements.txt

COPY pyproject.toml /opt/nightshift/src/pyproject.toml
COPY nightshift /opt/nightshift/src/nightshift
COPY nightshift_model /opt/nightshift/src/nightshift_model
RUN pip install --no-cache-dir --root-user-action=ignore --no-deps /opt/nightshift/src \
    && python -c "import nightshift, nightshift_model, pyspark; print('nightshift', nightshift.__file__, 'pyspark', pyspark.__version__)"

# The pyspark wheel is a complete Spark distribution without the sbin/ scripts: SPARK_HOME is the
# package directory and the daemons are started with bin/spark-class (on PATH via pip).
ENV JAVA_HOME=/usr/lib/jvm/java-17 \
    SPARK_HOME=/usr/local/lib/python3.11/site-packages/pyspark \
    SPARK_WORKER_DIR=/opt/spark/work \
    PYSPARK_PYTHON=python3
RUN test -x "${SPARK_HOME}/bin/spark-class" && java -version

USER nightshift
WORKDIR /opt/spark/work
