-- Runs once, when the postgres container initialises an empty data directory
-- (mounted into /docker-entrypoint-initdb.d/ by docker-compose.yml).
--
-- One database per bounded context, plus `orderflow` for Django's own tables (DATABASE_URL).
-- Each context's tables, outbox and inbox live only in its own database; no context reads
-- another's. On one server here for a small footprint; each may move to its own server by
-- changing <CONTEXT>_DATABASE_URL.
CREATE DATABASE orderflow;
CREATE DATABASE orderflow_customers;
CREATE DATABASE orderflow_catalog;
CREATE DATABASE orderflow_inventory;
CREATE DATABASE orderflow_orders;
CREATE DATABASE orderflow_payments;
CREATE DATABASE orderflow_notifications;
