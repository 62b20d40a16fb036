package mysql

import (
	"strings"
	"testing"
)

// TestBadConfigOneClearLine: a configuration the database refuses stops
// flowline at start with one error line that says what to fix.
func TestBadConfigOneClearLine(t *testing.T) {
	s := testServer(t)
	const db = "flowline_badcfg"
	s.dropDB(t, db)
	root := s.open(t, "")
	if _, err := root.Exec("CREATE DATABASE " + db); err != nil {
		t.Fatal(err)
	}
	// A table without the port columns the primitives need.
	if _, err := s.open(t, db).Exec(`CREATE TABLE acct (ip_src CHAR(45) NOT NULL, ip_dst CHAR(45) NOT NULL,
		tcp_flags INT UNSIGNED NOT NULL, ip_proto CHAR(6) NOT NULL, packets INT UNSIGNED NOT NULL,
		bytes BIGINT UNSIGNED NOT NULL, stamp_inserted DATETIME NOT NULL, stamp_updated DATETIME,
		PRIMARY KEY (ip_src, ip_dst, ip_proto, stamp_inserted))`); err != nil {
		t.Fatal(err)
	}
	good := s.mysqlTOML(db, "")
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"unknown host", `host = "127.0.0.1"`, `host = "no-such-host.invalid"`, `unknown database host "no-such-host.invalid": check host`},
		{"wrong password", `password = "${FLOWLINE_TEST_MYSQL_PASSWORD}"`, `password = "wrong"`, `wrong user or password (check user and password`},
		{"columns do not match", `create_table = true`, `create_table = false`, `does not match the primitives: missing column(s) port_src, port_dst`},
		{"primitives differ from the aggregate's", `optimize_clauses = true`, "optimize_clauses = true\n  primitives = [\"src_host\", \"dst_host\"]",
			`primitives = [src_host, dst_host] differ from the aggregate's [src_host, dst_host, src_port, dst_port, tcpflags, proto]`},
		{"missing database", `database = "` + db + `"`, `database = "flowline_nonexistent"` + "\n  create_table = false", `database "flowline_nonexistent" does not exist`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.from) {
				t.Fatalf("config lacks %q", tc.from)
			}
			cfg := strings.Replace(good, tc.from, tc.to, 1)
			if tc.name == "missing database" {
				cfg = strings.Replace(cfg, "create_table = true", "", 1)
			}
			dir := t.TempDir()
			c, err := runFlowline(t, dir, collectorTOML(dir, freeUDPPort(t), "", cfg), s)
			if err == nil {
				c.Stop()
				t.Fatalf("flowline started with a bad %s", tc.name)
			}
			var errLines []string
			for _, l := range strings.Split(err.Error(), "\n") {
				// Connection errors are logged; configuration errors found
				// at Init are the exit message.
				if strings.Contains(l, "level=ERROR") || strings.HasPrefix(l, "flowline: ") {
					errLines = append(errLines, strings.ReplaceAll(l, `\"`, `"`))
				}
			}
			if len(errLines) != 1 || !strings.Contains(errLines[0], tc.want) || !strings.Contains(errLines[0], "outputs.mysql") {
				t.Fatalf("want one error line saying %q (naming outputs.mysql), got:\n%s", tc.want, err)
			}
			t.Logf("%s", errLines[0])
		})
	}
}
