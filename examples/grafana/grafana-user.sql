-- A read-only user for Grafana's MySQL data source (the password is the
-- example's default; change it with GRAFANA_MYSQL_PASSWORD and here).
CREATE USER IF NOT EXISTS 'grafana'@'%' IDENTIFIED BY 'grafana';
GRANT SELECT ON pmacct.* TO 'grafana'@'%';
