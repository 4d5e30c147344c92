-- Nightshift: databases and owners for Airflow's metadata and MLflow's tracking store.
--
-- Mounted into /docker-entrypoint-initdb.d/ of the postgres:16 container, so the image's
-- entrypoint runs it once, with psql as POSTGRES_USER, when the data volume is still empty.
-- Changing the passwords later needs ALTER ROLE (or a fresh volume): this file does not run again.
--
-- Users and passwords come from the container's environment (set in docker-compose.yaml from
-- AIRFLOW_DB_USER / AIRFLOW_DB_PASSWORD / MLFLOW_DB_USER / MLFLOW_DB_PASSWORD); the \set lines
-- are the defaults, used when a variable is not set at all (\getenv then leaves them unchanged).
-- The defaults are for local development only. \getenv needs psql 15 or newer.

\set ON_ERROR_STOP on

\set airflow_db_user airflow
\set airflow_db_password airflow
\set mlflow_db_user mlflow
\set mlflow_db_password mlflow
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
