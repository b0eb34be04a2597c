package obs_test

// The dashboard and the alert rules in monitoring/ name metrics by hand:
// these tests check their queries parse (with promtool, when present) and,
// from the end-to-end test, that every metric they name is one a synod
// process exports.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

const monitoringDir = "../../monitoring"

// dashboardQueries returns every query of the shipped Grafana dashboard,
// by panel title.
func dashboardQueries(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	out := map[string][]string{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	return out
}

var metricName = regexp.MustCompile(`\bsynod_[a-z_]*[a-z]`)

// shippedNames returns every synod metric the dashboard and the alert
// rules name, histogram suffixes cut.
func shippedNames(t *testing.T) []string {
	t.Helper()
	var text strings.Builder
	for _, qs := range dashboardQueries(t) {
		text.WriteString(strings.Join(qs, "\n"))
	}
	rules, err := os.ReadFile(filepath.Join(monitoringDir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	text.Write(rules)
	seen := map[string]bool{}
	for _, n := range metricName.FindAllString(text.String(), -1) {
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(n, suf) && !strings.HasSuffix(n, "_total") {
				n = strings.TrimSuffix(n, suf)
			}
		}
		seen[n] = true
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// checkShippedNames fails t for every metric of the dashboard and rules
// that no scraped family has.
func checkShippedNames(t *testing.T, scraped []map[string]*dto.MetricFamily) {
	t.Helper()
	for _, n := range shippedNames(t) {
		found := false
		for _, fams := range scraped {
			if _, ok := fams[n]; ok {
				found = true
			}
		}
		if !found {
			t.Errorf("monitoring/ names %s, which no process exports", n)
		}
	}
}

// TestDashboardQueriesParse hands every dashboard query to promtool as a
// recording rule, so a typo fails here rather than in Grafana.
func TestDashboardQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (make rules-check installs it)")
	}
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	i := 0
	titles := dashboardQueries(t)
	keys := make([]string, 0, len(titles))
	for k := range titles {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, title := range keys {
		for _, q := range titles[title] {
			q = strings.ReplaceAll(q, "$job", ".*")
			js, _ := json.Marshal(q) // a JSON string is a YAML string
			fmt.Fprintf(&b, "      - record: dashboard:q%d\n        expr: %s\n", i, js)
			i++
		}
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}
