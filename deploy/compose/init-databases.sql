-- deploy/compose/init-databases.sql — one database per service.
--
-- Run once by the postgres image, when its data volume is first created
-- (files in /docker-entrypoint-initdb.d). `bookmyseat migrate` also creates
-- any database that is missing, so this is a head start, not a requirement;
-- migrations then create the tables.
CREATE DATABASE bookmyseat_catalog;
CREATE DATABASE bookmyseat_gateway;
CREATE DATABASE bookmyseat_seating;
CREATE DATABASE bookmyseat_payments;
CREATE DATABASE bookmyseat_notifier;
CREATE DATABASE bookmyseat_analytics;
