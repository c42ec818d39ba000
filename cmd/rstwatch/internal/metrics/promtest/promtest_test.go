package promtest

import "testing"

func TestParseExpositionRejects(t *testing.T) {
	head := "# HELP x_total X.\n# TYPE x_total counter\n"
	for _, tt := range []struct{ name, text string }{
		{"no_type", "# HELP x_total X.\nx_total 1\n"},
		{"bad_name", head + "x-total 1\n"},
		{"bad_value", head + "x_total one\n"},
		{"duplicate_series", head + "x_total{a=\"1\"} 1\nx_total{a=\"1\"} 2\n"},
		{"unquoted_label", head + "x_total{a=1} 1\n"},
		{"bad_escape", head + "x_total{a=\"\\t\"} 1\n"},
		{"duplicate_label", head + "x_total{a=\"1\",a=\"2\"} 1\n"},
		{"second_type", head + "# TYPE x_total counter\nx_total 1\n"},
		{"not_contiguous", head + "x_total{a=\"1\"} 1\n# HELP y Y.\n# TYPE y gauge\ny 1\nx_total{a=\"2\"} 1\n"},
		{"empty_line", head + "x_total 1\n\n"},
		{"no_final_newline", head + "x_total 1"},
		{"reserved_label", head + "x_total{__a=\"1\"} 1\n"},
	} {
		if _, err := Parse(tt.text); err == nil {
			t.Errorf("%s: Parse accepted %q", tt.name, tt.text)
		}
	}
	good := head + "x_total{a=\"q\\\"b\\\\n\\n\",b=\"\"} 1.5e3\nx_total 2 1700000000000\n# a comment\n"
	fams, err := Parse(good)
	if err != nil {
		t.Fatalf("failed to parse a valid exposition: %v", err)
	}
	if got := fams["x_total"].Samples[`x_total{a="q\"b\\n\n",b="",}`]; got != 1500 {
		t.Errorf("parsed %v", fams["x_total"].Samples)
	}
}
