package benchreport

import (
	"fmt"
	"math"
	"strings"
)

// Chart is benchmark-chart.svg: the founding table's medians as grouped
// bars on a log scale, a group per scenario, a bar per measured setup.
func (r *Results) Chart() string {
	const (
		width, height        = 860, 420
		left, right, top     = 70, 20, 50
		bottom               = 90
		plotW, plotH         = width - left - right, height - top - bottom
		barGap, groupPadding = 2.0, 16.0
	)
	colours := []string{"#9e9e9e", "#4e79a7", "#59a14f", "#f28e2b", "#b07aa1", "#e15759", "#edc948", "#76b7b2", "#ff9da7", "#9c755f"}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, c := range r.Cells {
		if c.Measured() && c.C1.P50ms > 0 {
			lo, hi = math.Min(lo, c.C1.P50ms), math.Max(hi, c.C1.P50ms)
		}
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	p(`<text x="%d" y="20" font-size="15" font-weight="bold">Median latency per task (ms, log scale, lower is better)</text>`+"\n", left)
	if math.IsInf(lo, 1) {
		p(`<text x="%d" y="%d">nothing measured</text>`+"\n</svg>\n", left, top+plotH/2)
		return b.String()
	}
	// Decades from below the fastest to above the slowest.
	minExp, maxExp := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if maxExp == minExp {
		maxExp++
	}
	y := func(v float64) float64 {
		return top + plotH - (math.Log10(v)-minExp)/(maxExp-minExp)*plotH
	}
	for e := minExp; e <= maxExp; e++ {
		v := math.Pow(10, e)
		p(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, width-right, y(v), y(v))
		p(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, trimFloat(v))
	}
	p(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", left, width-right, top+plotH, top+plotH)
	groupW := float64(plotW) / float64(max(len(r.Scenarios), 1))
	barW := (groupW - 2*groupPadding) / float64(max(len(r.Setups), 1))
	for gi, sc := range r.Scenarios {
		x0 := float64(left) + float64(gi)*groupW + groupPadding
		for si, s := range r.Setups {
			c := r.cell(sc.Key, s.Key)
			x := x0 + float64(si)*barW
			if c != nil && strings.HasPrefix(c.Skipped, "not loadable") {
				// No bar, and why, written up the bar's place.
				p(`<text transform="translate(%.1f %d) rotate(-90)" font-size="10" fill="#888">not loadable offline</text>`+"\n",
					x+barW/2+3, top+plotH-4)
			}
			if c == nil || !c.Measured() {
				continue
			}
			yv := y(c.C1.P50ms)
			p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %s: %s</title></rect>`+"\n",
				x+barGap/2, yv, barW-barGap, float64(top+plotH)-yv, colours[si%len(colours)], xmlEscape(sc.Title), xmlEscape(shortTitle(s)), ms(c.C1.P50ms))
		}
		p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x0+(groupW-2*groupPadding)/2, top+plotH+18, xmlEscape(sc.Title))
	}
	// Legend, in two rows under the axis.
	perRow := (len(r.Setups) + 1) / 2
	for si, s := range r.Setups {
		lx := float64(left) + float64(si%max(perRow, 1))*float64(plotW)/float64(max(perRow, 1))
		ly := float64(top+plotH+42) + float64(si/max(perRow, 1))*20
		label := shortTitle(s)
		if s.NotRun != "" {
			label += " (not run)"
		}
		p(`<rect x="%.1f" y="%.1f" width="12" height="12" fill="%s"/><text x="%.1f" y="%.1f">%s</text>`+"\n",
			lx, ly-10, colours[si%len(colours)], lx+16, ly, xmlEscape(label))
	}
	p("</svg>\n")
	return b.String()
}

func trimFloat(v float64) string {
	if v >= 1 {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
