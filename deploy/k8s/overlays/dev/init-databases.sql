-- deploy/k8s/overlays/dev/init-databases.sql — one database per service.
--
-- The dev PostgreSQL StatefulSet runs it once, when its volume is first
-- created (mounted into /docker-entrypoint-initdb.d). It is a copy of
-- deploy/compose/init-databases.sql, because kustomize reads no file outside
-- the overlay; scripts/validate-k8s.sh fails when the two lists differ. The
-- prod overlay creates the same databases in its CloudNativePG Cluster.
-- `bookmyseat migrate` also creates any database that is missing, so this is
-- a head start, not a requirement; migrations then create the tables.
CREATE DATABASE bookmyseat_catalog;
CREATE DATABASE bookmyseat_gateway;
CREATE DATABASE bookmyseat_seating;
CREATE DATABASE bookmyseat_payments;
CREATE DATABASE bookmyseat_notifier;
CREATE DATABASE bookmyseat_analytics;
