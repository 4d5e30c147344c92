-- Nightshift: databases and owners for Airflow's metadata and MLflow's tracking store.
--
-- Mounted into /docker-entrypoint-initdb.d/ of the postgres:16 container, so the image's
-- entrypoint runs it once, with psql as POSTGRES_USER, when the data volume is still empty.
-- Changing the passwords later needs ALTER ROLE (or a fresh volume): this file does not run again.
--
-- Users and passwords come from the container's environment (set in docker-compose.yaml from
-- AIRFLOW_DB_USER / AIRFLOW_DB_PASSWORD / MLFLOW_DB_USER / MLFLOW_DB_PASSWORD, generated into .env
-- by `make secrets`). There are no defaults: an unset variable stops the script. \getenv needs
-- psql 15 or newer. `make stack` creates the same roles and databases with psycopg2
-- (nightshift_stack/stack.py, ensure_databases).

\set ON_ERROR_STOP on

\getenv airflow_db_user AIRFLOW_DB_USER
\getenv airflow_db_password AIRFLOW_DB_PASSWORD
\getenv mlflow_db_user MLFLOW_DB_USER
\getenv mlflow_db_password MLFLOW_DB_PASSWORD

CREATE ROLE :"airflow_db_user" WITH LOGIN PASSWORD :'airflow_db_password';
CREATE DATABASE airflow OWNER :"airflow_db_user";
REVOKE ALL ON DATABASE airflow FROM PUBLIC;

CREATE ROLE :"mlflow_db_user" WITH LOGIN PASSWORD :'mlflow_db_password';
CREATE DATABASE mlflow OWNER :"mlflow_db_user";
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;

-- MLflow's basic-auth app keeps its users and permissions in a database of its own.
CREATE DATABASE mlflow_auth OWNER :"mlflow_db_user";
REVOKE ALL ON DATABASE mlflow_auth FROM PUBLIC;
