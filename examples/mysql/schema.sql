-- The acct table for the 5-tuple aggregate with sql_optimize_clauses: pmacct's
-- v9 column names and types (sql/pmacct-create-db_v9.mysql) for the chosen
-- primitives. Two choices differ from pmacct's file, and pmacct writes this
-- table just as well: BIGINT counters (INT UNSIGNED packets overflow on busy
-- keys) and a primary key that starts with stamp_inserted, so that new bins
-- append to the end of the index (faster writes, and time-range queries and
-- the life cycle read ranges instead of the whole table).
--
-- outputs.mysql with create_table = true creates the same table, and the life
-- cycle creates acct_archive, acct_1h, acct_all, flowline_ledger and
-- flowline_lifecycle itself.

CREATE DATABASE IF NOT EXISTS pmacct;
USE pmacct;

CREATE TABLE IF NOT EXISTS acct (
  ip_src CHAR(45) NOT NULL,
  ip_dst CHAR(45) NOT NULL,
  port_src INT(2) UNSIGNED NOT NULL,
  port_dst INT(2) UNSIGNED NOT NULL,
  tcp_flags INT(4) UNSIGNED NOT NULL,
  ip_proto CHAR(6) NOT NULL,
  packets BIGINT UNSIGNED NOT NULL,
  bytes BIGINT UNSIGNED NOT NULL,
  stamp_inserted DATETIME NOT NULL,
  stamp_updated DATETIME,
  PRIMARY KEY (stamp_inserted, ip_src, ip_dst, port_src, port_dst, ip_proto)
) ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin;

-- The collector's user (the compose file sets the password through
-- MYSQL_PASSWORD and the image creates the user). It needs CREATE for the
-- life-cycle tables and the ledger, CREATE VIEW for acct_all.
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, CREATE VIEW, INDEX, ALTER ON pmacct.* TO 'pmacct'@'%';
